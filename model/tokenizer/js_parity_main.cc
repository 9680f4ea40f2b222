// js_parity_helper: encodes a set of texts and conversations with our tokenizer and prints the
// results as JSON, for js_parity.js to compare with the JavaScript library (js_parity_test.sh).
//
//   js_parity_helper --tokenizer=tokenizer.json --cases=cases.json [--text_files=a,b] > ours.json
//
// cases.json: {"texts": ["..."], "chats": [{"messages": [{"role": ..., "content": ...}],
// "add_generation_prompt": true}]}. Output: {"ids": [[...]], "ids_special": [[...]] (the cases'
// texts encoded with add_special_tokens), "roundtrip": [true, ...], "decoded": ["..."],
// "chat_text": ["..."], "chat_ids": [[...]]}; texts from --text_files follow the cases' texts.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "model/tokenizer/chat_format.h"
#include "model/tokenizer/read_file.h"
#include "model/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, tokenizer, "", "Path of the tokenizer.json.");
ABSL_FLAG(std::string, cases, "", "Path of the cases JSON.");
ABSL_FLAG(std::string, text_files, "", "Comma-separated files, each encoded as one more text.");

namespace {

absl::StatusOr<std::string> Run() {
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok,
                   tokenizer::Tokenizer::FromFile(absl::GetFlag(FLAGS_tokenizer)));
  ASSIGN_OR_RETURN(std::string cases_text, tokenizer::ReadFile(absl::GetFlag(FLAGS_cases)));
  const nlohmann::json cases = nlohmann::json::parse(cases_text, nullptr, false);
  if (cases.is_discarded()) return absl::InvalidArgumentError("cases: not JSON");
  std::vector<std::string> texts = cases.value("texts", std::vector<std::string>());
  nlohmann::json out;
  out["ids_special"] = nlohmann::json::array();  // the cases' texts with add_special_tokens
  for (const std::string& text : texts) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok->Encode(text, true));
    out["ids_special"].push_back(ids);
  }
  const std::string files = absl::GetFlag(FLAGS_text_files);
  for (absl::string_view file : absl::StrSplit(files, ',', absl::SkipEmpty())) {
    ASSIGN_OR_RETURN(std::string text, tokenizer::ReadFile(std::string(file)));
    texts.push_back(std::move(text));
  }
  out["ids"] = nlohmann::json::array();
  out["roundtrip"] = nlohmann::json::array();
  out["decoded"] = nlohmann::json::array();
  for (const std::string& text : texts) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok->Encode(text, false));
    ASSIGN_OR_RETURN(std::string decoded, tok->Decode(ids, false));
    out["ids"].push_back(ids);
    out["roundtrip"].push_back(decoded == text);
    out["decoded"].push_back(decoded);
  }
  out["chat_text"] = nlohmann::json::array();
  out["chat_ids"] = nlohmann::json::array();
  for (const nlohmann::json& chat : cases.value("chats", nlohmann::json::array())) {
    std::vector<tokenizer::ChatMessage> messages;
    for (const nlohmann::json& m : chat["messages"]) {
      messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    const bool prompt = chat.value("add_generation_prompt", false);
    ASSIGN_OR_RETURN(std::string text, tokenizer::RenderDeepSeekV3Chat(messages, prompt));
    ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                     tokenizer::EncodeDeepSeekV3Chat(*tok, messages, prompt));
    out["chat_text"].push_back(text);
    out["chat_ids"].push_back(ids);
  }
  return out.dump() + "\n";
}

}  // namespace

int main(int argc, char** argv) {
  core::ParseFlagsOrExit(argc, argv,
                         "Encodes test texts and conversations and prints JSON for js_parity.js.\n"
                         "Usage: js_parity_helper --tokenizer=F --cases=F [--text_files=a,b]");
  absl::StatusOr<std::string> out = Run();
  if (!out.ok()) {
    std::fprintf(stderr, "js_parity_helper: %s\n", std::string(out.status().message()).c_str());
    return 1;
  }
  std::fwrite(out->data(), 1, out->size(), stdout);
  return 0;
}
