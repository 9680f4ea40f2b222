// Checkpoints: the contract between training and serving.
//
// A checkpoint is a directory CHECKPOINTS/step-NNNNNNNN/ holding
//   model-stageS-epE.safetensors   the parameters of model stage S held by expert rank E, under
//                                  DeepSeek-V3's names (expert rank 0 also holds the weights every
//                                  expert rank shares; each file holds only its rank's experts)
//   model.safetensors.index.json   {"metadata": {"total_size": bytes}, "weight_map": {name: file}}
//                                  as Hugging Face writes it
//   optimizer-stageS-epE.safetensors   AdamW's state of those parameters
//   trainer_state.json             step, tokens seen, the data position of every data shard
//   config.textproto               the training config (its model inline)
//   model.textproto                the model config alone
//   tokenizer.json                 the tokenizer the run used
// A checkpoint is written under a temporary name, every file fsynced, then renamed into place
// and the parent directory fsynced: a directory named step-N is complete. Temporary directories
// left by a crash are ignored and removed by the next writer.
#ifndef TRAINING_CHECKPOINT_H_
#define TRAINING_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"

namespace training {

// "step-00000042".
std::string CheckpointName(int64_t step);

// The complete checkpoints under `dir`, by step, newest last. An absent dir has none.
absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> ListCheckpoints(
    const std::string& dir);

// A fresh temporary directory under `dir` for the checkpoint of `step` (created with parents).
absl::StatusOr<std::string> BeginCheckpoint(const std::string& dir, int64_t step);

// Writes `contents` to `path` and fsyncs it.
absl::Status WriteFileSynced(const std::string& path, const std::string& contents);

// fsyncs every file of `tmp_dir`, renames it to dir/step-N, fsyncs `dir`, and then removes
// complete checkpoints beyond the newest `keep` (0 keeps all) and stale temporary directories.
absl::Status CommitCheckpoint(const std::string& dir, const std::string& tmp_dir, int64_t step,
                              int keep);

// The trainer's state in a checkpoint (trainer_state.json).
struct TrainerState {
  int64_t step = 0;
  int64_t tokens = 0;
  std::vector<std::string> data_states;  // by data shard (dp index * ep + ep index)
  std::string model_name;

  std::string ToJson() const;
  // INVALID_ARGUMENT (DATA_LOSS for malformed JSON) if a field is missing or of the wrong type.
  static absl::StatusOr<TrainerState> FromJson(const std::string& json);
};

// The safetensors file `path` as named views that stay valid while `storage` lives.
absl::StatusOr<std::vector<std::pair<std::string, core::TensorView>>> ReadTensors(
    const std::string& path, std::map<std::string, core::Tensor>* storage);

}  // namespace training

#endif  // TRAINING_CHECKPOINT_H_
