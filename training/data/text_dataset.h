// The whole text data pipeline in one call, for the training binary: corpus -> cached token
// stream -> train / validation split -> packed, shuffled, data-parallel-sharded batchers.
//
//   TextDataOptions options;
//   options.corpus = {"/usr/share/games/fortunes"};
//   options.cache_path = "/tmp/fortunes.tokens";
//   options.batcher = {.seq_len = 256, .batch_size = 8, .dp_rank = r, .dp_size = dp, .seed = 1};
//   ASSIGN_OR_RETURN(TextData data, LoadTextData(options, tokenizer));
//   std::puts(data.Summary().c_str());
//   data.train.Restore(checkpointed_state);   // DataState::Parse of what state().Serialize() gave
//   data.train.Next(&batch);                   // [batch_size, seq_len + 1]
//
// The validation batcher uses the same shape and sharding, without shuffling; it is absent when
// the validation split is empty or smaller than one step (Summary says so). Errors are one line:
// the corpus's (naming the file), a tokenizer without EOS, a corpus too small for one step.
#ifndef TRAINING_DATA_TEXT_DATASET_H_
#define TRAINING_DATA_TEXT_DATASET_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/tokenizer/tokenizer.h"
#include "training/data/batcher.h"
#include "training/data/corpus.h"
#include "training/data/token_cache.h"

namespace training::data {

struct TextDataOptions {
  std::vector<std::string> corpus;  // files, folders, globs (see corpus.h)
  std::string cache_path;           // token cache file; empty: no cache
  double validation_fraction = 0.01;
  int threads = 0;  // tokenization threads; 0: all cores
  BatcherOptions batcher;
};

struct TextData {
  CorpusFiles files;
  CacheInfo cache;
  int64_t documents = 0;
  int64_t train_tokens = 0, validation_tokens = 0;  // packed, EOS included
  Batcher train;
  std::optional<Batcher> validation;

  // One line: files (and skipped ones), documents, tokens per split, sequences, the cache.
  std::string Summary() const;
};

absl::StatusOr<TextData> LoadTextData(const TextDataOptions& options,
                                      const tokenizer::Tokenizer& tokenizer);

}  // namespace training::data

#endif  // TRAINING_DATA_TEXT_DATASET_H_
