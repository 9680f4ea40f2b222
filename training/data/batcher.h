// From a tokenized corpus to training batches: the split, packing with EOS, a deterministic
// shuffle, data-parallel sharding and a resumable position.
//
//   ASSIGN_OR_RETURN(std::vector<int32_t> stream,
//                    PackDocuments(tokens, Split::kTrain, /*validation_fraction=*/0.01, eos));
//   ASSIGN_OR_RETURN(Batcher batcher, Batcher::Create(std::move(stream), options));
//   batcher.Restore(saved_state);            // optional: from a checkpoint
//   batcher.Next(&batch);                    // [batch_size, seq_len + 1]
//   checkpoint.data_state = batcher.state().Serialize();
//
// Packing: the split's documents, in corpus order, each followed by EOS, form one stream; sequence
// i is stream[i * seq_len, i * seq_len + seq_len + 1) (inputs are its first seq_len tokens,
// targets its last seq_len), so consecutive sequences share one token and documents run across
// sequence boundaries. Each epoch visits the sequences in a permutation drawn from (seed, epoch)
// (identity without shuffle); a step takes the next batch_size * dp_size of them and rank r gets
// the r-th block of batch_size. The last partial step of an epoch is dropped. Every rank computes
// the same permutation, so ranks agree without communicating.
#ifndef TRAINING_DATA_BATCHER_H_
#define TRAINING_DATA_BATCHER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "training/data/token_cache.h"

namespace training::data {

enum class Split { kTrain, kValidation };

// The stream of the documents in `split` (by IsValidationDocument of their hashes), each followed
// by `eos_id`. InvalidArgument if the split has no document.
absl::StatusOr<std::vector<int32_t>> PackDocuments(const TokenizedCorpus& corpus, Split split,
                                                   double validation_fraction, int32_t eos_id);

// Where a Batcher stands: the epoch, and the index of the next sequence in that epoch's
// permutation (the same on every data-parallel rank). Small enough to live in a checkpoint.
struct DataState {
  int64_t epoch = 0;
  int64_t position = 0;

  // "epoch=E position=P"; Parse accepts exactly what Serialize writes (InvalidArgument else).
  std::string Serialize() const;
  static absl::StatusOr<DataState> Parse(std::string_view text);
  bool operator==(const DataState& other) const {
    return epoch == other.epoch && position == other.position;
  }
};

struct BatcherOptions {
  int seq_len = 0;     // tokens per input sequence, >= 1
  int batch_size = 1;  // sequences per rank per step, >= 1
  int dp_rank = 0;     // in [0, dp_size)
  int dp_size = 1;     // >= 1
  uint64_t seed = 0;
  bool shuffle = true;
};

class Batcher {
 public:
  // InvalidArgument for bad options, or when the stream holds fewer sequences than one step
  // needs (the message gives both counts).
  static absl::StatusOr<Batcher> Create(std::vector<int32_t> stream, const BatcherOptions& options);

  int64_t num_sequences() const { return num_sequences_; }
  int64_t steps_per_epoch() const { return num_sequences_ / step_sequences(); }

  // Fills *batch with this rank's next batch, row-major [batch_size, seq_len + 1], and advances.
  void Next(std::vector<int32_t>* batch);

  const DataState& state() const { return state_; }
  // Continues from `state` (as saved by state() of a batcher over the same stream with the same
  // options: the state does not record them). InvalidArgument if the position is not a step
  // boundary of this configuration.
  absl::Status Restore(const DataState& state);

 private:
  Batcher() = default;
  int64_t step_sequences() const {
    return static_cast<int64_t>(options_.batch_size) * options_.dp_size;
  }
  void Permute(int64_t epoch);

  std::vector<int32_t> stream_;
  BatcherOptions options_;
  int64_t num_sequences_ = 0;
  DataState state_;
  int64_t permutation_epoch_ = -1;
  std::vector<int64_t> permutation_;
};

}  // namespace training::data

#endif  // TRAINING_DATA_BATCHER_H_
