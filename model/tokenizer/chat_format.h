// DeepSeek-V3's chat format, rendered natively (the same text as the chat_template of its
// tokenizer_config.json): system prompts first (joined by blank lines) after BOS, then each turn —
// "<｜User｜>" + user text; "<｜Assistant｜>" + reply + EOS; tool results wrapped in
// <｜tool▁outputs▁begin｜> / <｜tool▁output▁begin｜> ... — and, when asked for, the generation
// prompt "<｜Assistant｜>". Assistant tool calls are not supported.
#ifndef MODEL_TOKENIZER_CHAT_FORMAT_H_
#define MODEL_TOKENIZER_CHAT_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/tokenizer/tokenizer.h"

namespace tokenizer {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
};

// The conversation as text. InvalidArgument naming the message for an unknown role.
absl::StatusOr<std::string> RenderDeepSeekV3Chat(absl::Span<const ChatMessage> messages,
                                                 bool add_generation_prompt);

// The conversation's ids: the rendered text encoded without post-processor tokens (the text
// already starts with BOS), as transformers' apply_chat_template(tokenize=True) does.
absl::StatusOr<std::vector<int32_t>> EncodeDeepSeekV3Chat(const Tokenizer& tokenizer,
                                                          absl::Span<const ChatMessage> messages,
                                                          bool add_generation_prompt);

}  // namespace tokenizer

#endif  // MODEL_TOKENIZER_CHAT_FORMAT_H_
