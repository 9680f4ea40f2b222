// A corpus as one token stream, tokenized with all cores and cached in a binary file.
//
//   ASSIGN_OR_RETURN(TokenizedCorpus tokens,
//                    LoadOrTokenize(files, tokenizer, "/tmp/fortunes.tokens", /*threads=*/0,
//                    &info));
//
// Cache file (native little-endian): the header — magic "DSMOETK1", the tokenizer's fingerprint,
// and each source's path, size and mtime — then the document and token counts, an FNV-1a checksum
// of the payload, and the payload (document offsets, document hashes, tokens). A cache is reused
// only if its header equals the one the current sources and tokenizer give; a changed input
// rebuilds it, and a corrupt or truncated file (bad magic, counts, length or checksum) is detected
// and rebuilt. Written to a temporary file and renamed, so readers never see half a cache.
#ifndef TRAINING_DATA_TOKEN_CACHE_H_
#define TRAINING_DATA_TOKEN_CACHE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/tokenizer/tokenizer.h"
#include "training/data/corpus.h"

namespace training::data {

struct TokenizedCorpus {
  std::vector<int32_t> tokens;   // every document's tokens, in corpus order, concatenated
  std::vector<int64_t> offsets;  // [documents + 1]: document d is tokens[offsets[d], offsets[d+1])
  std::vector<uint64_t> hashes;  // [documents]: DocumentHash of each document's text

  int64_t num_documents() const { return static_cast<int64_t>(hashes.size()); }
};

struct CacheInfo {
  bool reused = false;
  std::string rebuilt_because;  // when not reused: "no cache", "sources or tokenizer changed", ...
  int64_t bytes_read = 0;       // corpus bytes tokenized (0 when reused)
  double seconds = 0;
};

// Reads and tokenizes every document of `files` with `threads` threads (0: all cores). Errors
// name the file.
absl::StatusOr<TokenizedCorpus> TokenizeCorpus(const CorpusFiles& files,
                                               const tokenizer::Tokenizer& tokenizer, int threads,
                                               int64_t* bytes_read = nullptr);

// The cached stream at `cache_path` if it matches `files` and `tokenizer`; otherwise tokenizes and
// (re)writes the cache. An empty cache_path disables caching. *info (if not null) says which.
absl::StatusOr<TokenizedCorpus> LoadOrTokenize(const CorpusFiles& files,
                                               const tokenizer::Tokenizer& tokenizer,
                                               const std::string& cache_path, int threads,
                                               CacheInfo* info = nullptr);

}  // namespace training::data

#endif  // TRAINING_DATA_TOKEN_CACHE_H_
