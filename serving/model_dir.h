// A checkpoint directory as the serving engine reads it, and the writer //tools:init_checkpoint
// uses to make one with seeded weights. The layout is the training binary's
// (training/checkpoint.h):
//   model-stageS-epE.safetensors   parameters under DeepSeek-V3's names (any split into files)
//   model.safetensors.index.json   {"metadata": {...}, "weight_map": {name: file}}
//   model.textproto                the ModelConfig
//   tokenizer.json                 the tokenizer
// A training output directory (holding checkpoints/step-N/) or a checkpoints/ directory is also
// accepted: its newest complete step is read.
#ifndef SERVING_MODEL_DIR_H_
#define SERVING_MODEL_DIR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config.pb.h"
#include "model/matrix.h"
#include "model/model_stage.h"
#include "model/tokenizer/tokenizer.h"

namespace serving {

// The directory that holds model.textproto for `path`: `path` itself, or the newest
// checkpoints/step-N (or step-N) under it. NOT_FOUND naming `path` if there is none.
absl::StatusOr<std::string> ResolveModelDir(const std::string& path);

// A whole model on the CPU in f32 with its tokenizer.
struct LoadedModel {
  std::string dir;  // the resolved directory
  model::ModelConfig config;
  std::unique_ptr<model::ModelStage<float>> model;  // StageRange::Whole, ep_size 1
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
};

// Reads the config, the tokenizer and every parameter (all stages' and expert ranks' files
// merged). Errors: NOT_FOUND for a missing file or tensor, INVALID_ARGUMENT for a bad config, a
// tokenizer whose ids do not fit the vocabulary, or tensors of the wrong shape; each names the
// file.
absl::StatusOr<LoadedModel> LoadModelDir(const std::string& path);

// Writes a checkpoint of one stage and one expert rank into `dir` (created if absent):
// model-stage0-ep0.safetensors with every parameter in f32, the index, model.textproto and
// tokenizer.json (`tokenizer_json`, verbatim). INTERNAL naming the file on a write error.
absl::Status WriteModelDir(const std::string& dir, const model::ModelConfig& config,
                           const std::vector<model::Param<float>*>& params,
                           const std::string& tokenizer_json);

}  // namespace serving

#endif  // SERVING_MODEL_DIR_H_
