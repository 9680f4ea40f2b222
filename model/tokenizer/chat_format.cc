#include "model/tokenizer/chat_format.h"

#include "absl/strings/str_cat.h"

namespace tokenizer {
namespace {

constexpr char kBos[] = "<｜begin▁of▁sentence｜>";
constexpr char kEos[] = "<｜end▁of▁sentence｜>";
constexpr char kUser[] = "<｜User｜>";
constexpr char kAssistant[] = "<｜Assistant｜>";
constexpr char kOutputsBegin[] = "<｜tool▁outputs▁begin｜>";
constexpr char kOutputsEnd[] = "<｜tool▁outputs▁end｜>";
constexpr char kOutputBegin[] = "<｜tool▁output▁begin｜>";
constexpr char kOutputEnd[] = "<｜tool▁output▁end｜>";

}  // namespace

absl::StatusOr<std::string> RenderDeepSeekV3Chat(absl::Span<const ChatMessage> messages,
                                                 bool add_generation_prompt) {
  std::string system;
  bool first_system = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      return absl::InvalidArgumentError(absl::StrCat("message ", i, ": unknown role \"", role,
                                                     "\" (system, user, assistant or tool)"));
    }
    if (role != "system") continue;
    if (!first_system) system += "\n\n";
    system += messages[i].content;
    first_system = false;
  }
  std::string out = absl::StrCat(kBos, system);
  bool in_tool = false;      // the previous turns were tool outputs
  bool first_output = true;  // as in the template, never reset after the first tool output
  for (const ChatMessage& message : messages) {
    if (message.role == "user") {
      in_tool = false;
      absl::StrAppend(&out, kUser, message.content);
    } else if (message.role == "assistant") {
      if (in_tool) {
        absl::StrAppend(&out, kOutputsEnd, message.content, kEos);
        in_tool = false;
      } else {
        absl::StrAppend(&out, kAssistant, message.content, kEos);
      }
    } else if (message.role == "tool") {
      in_tool = true;
      if (first_output) {
        absl::StrAppend(&out, kOutputsBegin, kOutputBegin, message.content, kOutputEnd);
        first_output = false;
      } else {
        absl::StrAppend(&out, "\n", kOutputBegin, message.content, kOutputEnd);
      }
    }
  }
  if (in_tool) out += kOutputsEnd;
  if (add_generation_prompt && !in_tool) out += kAssistant;
  return out;
}

absl::StatusOr<std::vector<int32_t>> EncodeDeepSeekV3Chat(const Tokenizer& tokenizer,
                                                          absl::Span<const ChatMessage> messages,
                                                          bool add_generation_prompt) {
  absl::StatusOr<std::string> text = RenderDeepSeekV3Chat(messages, add_generation_prompt);
  if (!text.ok()) return text.status();
  return tokenizer.Encode(*text, /*add_special_tokens=*/false);
}

}  // namespace tokenizer
