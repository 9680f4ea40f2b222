// train_tokenizer: trains a byte-level BPE tokenizer (DeepSeek-V3's pre-tokenizer and special
// tokens) on a corpus and writes its tokenizer.json.
//
//   bazel run //tools:train_tokenizer -- --input=/usr/share/games/fortunes --vocab_size=4096
//       --output=$PWD/tokenizer.json  (one line)
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "model/tokenizer/bpe_trainer.h"
#include "training/data/corpus.h"

ABSL_FLAG(std::string, input, "",
          "Corpus: comma-separated files, folders or globs (plain text, or .jsonl with a \"text\" "
          "field); required.");
ABSL_FLAG(int, vocab_size, 4096, "Vocabulary size, special tokens and the 256 bytes included.");
ABSL_FLAG(int64_t, min_frequency, 2, "Stop when no pair occurs this many times.");
ABSL_FLAG(std::string, output, "", "Where to write the tokenizer.json; required.");

namespace {

absl::Status Run() {
  const auto start = std::chrono::steady_clock::now();
  const std::string input = absl::GetFlag(FLAGS_input);
  const std::string output = absl::GetFlag(FLAGS_output);
  if (input.empty()) return absl::InvalidArgumentError("--input is required (see --help)");
  if (output.empty()) return absl::InvalidArgumentError("--output is required (see --help)");
  tokenizer::BpeTrainerOptions options;
  options.vocab_size = absl::GetFlag(FLAGS_vocab_size);
  options.min_frequency = absl::GetFlag(FLAGS_min_frequency);
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::BpeTrainer> trainer,
                   tokenizer::BpeTrainer::Create(options));
  const std::vector<std::string> specs = absl::StrSplit(input, ',', absl::SkipEmpty());
  ASSIGN_OR_RETURN(training::data::CorpusFiles files, training::data::ListCorpus(specs));
  ASSIGN_OR_RETURN(training::data::Corpus corpus, training::data::ReadCorpus(files));
  for (const training::data::Document& document : corpus.documents) {
    const absl::Status status = trainer->AddText(document.text);
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat(files.files[document.source].path, ": ", status.message()));
    }
  }
  tokenizer::BpeTrainerStats stats;
  ASSIGN_OR_RETURN(std::string json, trainer->Train(&stats));
  const std::string temporary = output + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << json;
    if (!out.good()) return absl::InternalError(absl::StrCat(output, ": cannot write"));
  }
  if (std::rename(temporary.c_str(), output.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(output, ": cannot rename ", temporary));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(
      stderr,
      "train_tokenizer: %zu files (%lld not text skipped, %lld duplicates), %zu documents, "
      "%.1f MB, %lld words (%lld distinct); %d merges, vocabulary %d; %.1f s -> %s\n",
      files.files.size(), static_cast<long long>(files.skipped_not_text),
      static_cast<long long>(files.skipped_duplicates), corpus.documents.size(), corpus.bytes / 1e6,
      static_cast<long long>(stats.words), static_cast<long long>(stats.unique_words), stats.merges,
      261 + stats.merges, seconds, output.c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  core::ParseFlagsOrExit(
      argc, argv,
      "Trains a byte-level BPE tokenizer with DeepSeek-V3's pre-tokenizer and\n"
      "special tokens on a corpus and writes its tokenizer.json. Deterministic.\n"
      "Usage: train_tokenizer --input=FILES,FOLDERS,GLOBS --vocab_size=N "
      "--output=tokenizer.json");
  const absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "train_tokenizer: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
