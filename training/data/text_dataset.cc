#include "training/data/text_dataset.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace training::data {

std::string TextData::Summary() const {
  std::string cache_note =
      cache.reused ? "reused the token cache"
                   : absl::StrCat("tokenized ", absl::StrFormat("%.1f", cache.bytes_read / 1e6),
                                  " MB (", cache.rebuilt_because, ")");
  return absl::StrFormat(
      "data: %d files (%d not text skipped, %d duplicates), %d documents; train %d tokens, "
      "%d sequences; validation %d tokens, %s; %s in %.2f s",
      files.files.size(), files.skipped_not_text, files.skipped_duplicates, documents, train_tokens,
      train.num_sequences(), validation_tokens,
      validation.has_value() ? absl::StrCat(validation->num_sequences(), " sequences")
                             : std::string("too small for a step, not used"),
      cache_note, cache.seconds);
}

absl::StatusOr<TextData> LoadTextData(const TextDataOptions& options,
                                      const tokenizer::Tokenizer& tokenizer) {
  if (!tokenizer.eos_id().has_value()) {
    return absl::InvalidArgumentError("the tokenizer has no EOS token to separate documents");
  }
  if (!(options.validation_fraction >= 0 && options.validation_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("validation_fraction must be in [0, 1), got ", options.validation_fraction));
  }
  absl::StatusOr<CorpusFiles> files = ListCorpus(options.corpus);
  if (!files.ok()) return files.status();
  CacheInfo cache;
  absl::StatusOr<TokenizedCorpus> tokens =
      LoadOrTokenize(*files, tokenizer, options.cache_path, options.threads, &cache);
  if (!tokens.ok()) return tokens.status();
  const int32_t eos = *tokenizer.eos_id();
  absl::StatusOr<std::vector<int32_t>> train =
      PackDocuments(*tokens, Split::kTrain, options.validation_fraction, eos);
  if (!train.ok()) return train.status();
  const int64_t train_tokens = static_cast<int64_t>(train->size());
  absl::StatusOr<Batcher> train_batcher = Batcher::Create(*std::move(train), options.batcher);
  if (!train_batcher.ok()) {
    return absl::Status(
        train_batcher.status().code(),
        absl::StrCat(options.corpus.front(), ": ", train_batcher.status().message()));
  }
  TextData data{*std::move(files),         cache,       tokens->num_documents(), train_tokens, 0,
                *std::move(train_batcher), std::nullopt};
  absl::StatusOr<std::vector<int32_t>> validation =
      PackDocuments(*tokens, Split::kValidation, options.validation_fraction, eos);
  if (validation.ok()) {
    data.validation_tokens = static_cast<int64_t>(validation->size());
    BatcherOptions unshuffled = options.batcher;
    unshuffled.shuffle = false;
    absl::StatusOr<Batcher> batcher = Batcher::Create(*std::move(validation), unshuffled);
    if (batcher.ok()) data.validation = *std::move(batcher);
  }
  return data;
}

}  // namespace training::data
