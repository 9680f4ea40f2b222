// Trains a byte-level BPE tokenizer with DeepSeek-V3's pre-tokenizer and special tokens, and
// writes it as a Hugging Face tokenizer.json that this library and Hugging Face's (or
// transformers.js) load and encode identically.
//
//   BpeTrainer trainer({.vocab_size = 4096});
//   for (const std::string& text : texts) RETURN_IF_ERROR(trainer.AddText(text));
//   ASSIGN_OR_RETURN(std::string json, trainer.Train());
//
// Vocabulary: the special tokens (ids 0..4: <｜begin▁of▁sentence｜>, <｜end▁of▁sentence｜>,
// <｜▁pad▁｜>, <｜User｜>, <｜Assistant｜>), the 256 bytes, then one token per merge, learned by
// repeatedly merging the most frequent adjacent pair within pre-tokenized words (ties: the pair
// with the smaller ids). Stops at `vocab_size` or when no pair occurs `min_frequency` times.
// Deterministic: the same texts (in any order) give the same file.
//
// Not thread-safe.
#ifndef MODEL_TOKENIZER_BPE_TRAINER_H_
#define MODEL_TOKENIZER_BPE_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/tokenizer/tokenizer.h"

namespace tokenizer {

struct BpeTrainerOptions {
  int vocab_size = 4096;  // including the 5 special tokens and 256 bytes: >= 261
  int64_t min_frequency = 2;
};

struct BpeTrainerStats {
  int64_t words = 0;         // pre-tokenized words seen
  int64_t unique_words = 0;  // distinct
  int merges = 0;
};

class BpeTrainer {
 public:
  // InvalidArgument for a vocab_size below 261 or above 1 << 24.
  static absl::StatusOr<std::unique_ptr<BpeTrainer>> Create(const BpeTrainerOptions& options);

  // Pre-tokenizes `text` (valid UTF-8; special tokens in it are not learned) and counts its words.
  absl::Status AddText(std::string_view text);

  // Learns the merges and returns the tokenizer.json text. Call once.
  absl::StatusOr<std::string> Train(BpeTrainerStats* stats = nullptr);

  // The tokenizer.json of an untrained tokenizer (bytes only), whose pre-tokenizer and special
  // tokens every trained one shares.
  static std::string SkeletonJson();

 private:
  BpeTrainer() = default;
  BpeTrainerOptions options_;
  std::unique_ptr<Tokenizer> skeleton_;
  absl::flat_hash_map<std::string, int64_t> word_counts_;
  int64_t words_ = 0;
};

}  // namespace tokenizer

#endif  // MODEL_TOKENIZER_BPE_TRAINER_H_
