// tokenize: encodes standard input with a Hugging Face tokenizer.json and prints the ids, or
// decodes ids back to text.
//
//   echo -n "Hello world" | bazel run //tools:tokenize -- --tokenizer=$PWD/tokenizer.json
//   echo "19923 2058" | bazel run //tools:tokenize -- --tokenizer=$PWD/tokenizer.json --decode
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "model/tokenizer/tokenizer.h"

ABSL_FLAG(std::string, tokenizer, "", "Path of the tokenizer.json (required).");
ABSL_FLAG(bool, add_special_tokens, false,
          "Encode: add the tokens the tokenizer's post-processor adds (e.g. BOS).");
ABSL_FLAG(bool, decode, false,
          "Read token ids (separated by white space) and print their text instead.");
ABSL_FLAG(bool, skip_special_tokens, false, "Decode: leave special tokens out of the text.");

namespace {

absl::StatusOr<std::string> Run() {
  const std::string path = absl::GetFlag(FLAGS_tokenizer);
  if (path.empty()) return absl::InvalidArgumentError("--tokenizer is required (see --help)");
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::FromFile(path));
  const std::string input((std::istreambuf_iterator<char>(std::cin)),
                          std::istreambuf_iterator<char>());
  if (!absl::GetFlag(FLAGS_decode)) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                     tok->Encode(input, absl::GetFlag(FLAGS_add_special_tokens)));
    return absl::StrCat(absl::StrJoin(ids, " "), "\n");
  }
  std::vector<int32_t> ids;
  for (absl::string_view word :
       absl::StrSplit(input, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(word, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("'", word, "' is not a token id"));
    }
    ids.push_back(id);
  }
  return tok->Decode(ids, absl::GetFlag(FLAGS_skip_special_tokens));
}

}  // namespace

int main(int argc, char** argv) {
  core::ParseFlagsOrExit(
      argc, argv,
      "Encodes standard input (the whole input is one text) with a Hugging Face\n"
      "tokenizer.json and prints the ids on one line, separated by spaces; with\n"
      "--decode, reads ids and prints their text.\n"
      "Usage: tokenize --tokenizer=tokenizer.json [--add_special_tokens]\n"
      "       tokenize --tokenizer=tokenizer.json --decode [--skip_special_tokens]");
  absl::StatusOr<std::string> out = Run();
  if (!out.ok()) {
    std::fprintf(stderr, "tokenize: %s\n", std::string(out.status().message()).c_str());
    return 1;
  }
  std::fwrite(out->data(), 1, out->size(), stdout);
  return 0;
}
