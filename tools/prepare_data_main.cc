// prepare_data: runs the text data pipeline once: lists and reads the corpus, tokenizes it with
// all cores into the token cache (or reuses it), splits, packs and prints a one-line summary and
// the first batch's text. Training runs then start from the cache.
//
//   bazel run -c opt //tools:prepare_data -- --corpus=/usr/share/games/fortunes
//       --tokenizer=$PWD/tokenizer.json --cache=$PWD/out/fortunes.tokens --seq_len=256  (one line)
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "model/tokenizer/tokenizer.h"
#include "training/data/text_dataset.h"

ABSL_FLAG(std::string, corpus, "/usr/share/games/fortunes",
          "Comma-separated files, folders or globs (plain text, or .jsonl with a \"text\" field).");
ABSL_FLAG(std::string, tokenizer, "", "Path of the tokenizer.json (required).");
ABSL_FLAG(std::string, cache, "", "Token cache file; empty: no cache.");
ABSL_FLAG(double, validation_fraction, 0.01, "Share of documents in the validation split.");
ABSL_FLAG(int, seq_len, 256, "Tokens per sequence.");
ABSL_FLAG(int, batch_size, 8, "Sequences per batch.");
ABSL_FLAG(int, threads, 0, "Tokenization threads; 0: all cores.");
ABSL_FLAG(uint64_t, seed, 1, "Shuffle seed.");

namespace {

absl::Status Run() {
  const std::string path = absl::GetFlag(FLAGS_tokenizer);
  if (path.empty()) return absl::InvalidArgumentError("--tokenizer is required (see --help)");
  if (absl::GetFlag(FLAGS_threads) < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::FromFile(path));
  training::data::TextDataOptions options;
  options.corpus = absl::StrSplit(absl::GetFlag(FLAGS_corpus), ',', absl::SkipEmpty());
  options.cache_path = absl::GetFlag(FLAGS_cache);
  options.validation_fraction = absl::GetFlag(FLAGS_validation_fraction);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.batcher.seq_len = absl::GetFlag(FLAGS_seq_len);
  options.batcher.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.batcher.seed = absl::GetFlag(FLAGS_seed);
  ASSIGN_OR_RETURN(training::data::TextData data, training::data::LoadTextData(options, *tok));
  std::printf("%s\n", data.Summary().c_str());
  std::vector<int32_t> batch;
  data.train.Next(&batch);
  batch.resize(options.batcher.seq_len + 1);
  ASSIGN_OR_RETURN(std::string text, tok->Decode(batch));
  std::printf("first sequence:\n%s\n", text.c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  core::ParseFlagsOrExit(argc, argv,
                         "Tokenizes a corpus into the token cache and prints what training would\n"
                         "see: files, documents, tokens per split, sequences, the first sequence.\n"
                         "Usage: prepare_data --tokenizer=tokenizer.json [--corpus=PATHS]\n"
                         "         [--cache=FILE] [--seq_len=256] [--batch_size=8] [--threads=0]");
  const absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "prepare_data: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
