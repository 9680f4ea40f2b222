// The OpenAI API's JSON shapes, apart from HTTP: parsing /v1/completions and /v1/chat/completions
// bodies into prompts and SamplingParams (with OpenAI's defaults and vLLM's extensions top_k,
// stop_token_ids, ignore_eos), and building responses, stream chunks and errors.
//
// Parsing is strict about the fields it knows (types and ranges; errors name the field) and
// ignores fields it does not know, as OpenAI clients expect.
#ifndef SERVING_OPENAI_API_H_
#define SERVING_OPENAI_API_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/tokenizer/chat_format.h"
#include "model/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "serving/engine.h"
#include "serving/sampler.h"

namespace serving {

using Json = nlohmann::json;

// An HTTP error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
  Json ToJson() const;
};

// An ApiError for an engine or parsing status: INVALID_ARGUMENT 400, NOT_FOUND 404,
// RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, anything else 500.
ApiError ErrorFromStatus(const absl::Status& status);

enum class Endpoint { kCompletions, kChat };

// A parsed generation request: one or more prompts (completions may batch them), each sampled
// n times.
struct GenerationRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;  // as asked; empty if absent
  std::vector<std::vector<int32_t>> prompts;
  int64_t n = 1;
  SamplingParams params;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions: the prompt's text before the output
  bool max_tokens_given = false;
  std::vector<std::string> prompt_texts;  // completions with echo
};

// Parses a request body. INVALID_ARGUMENT naming the field for malformed JSON, wrong types, values
// out of range, an empty prompt or messages, or text that is not valid UTF-8. `max_seq_len` sets
// the default max_tokens of chat (what the context leaves) and bounds explicit ones.
absl::StatusOr<GenerationRequest> ParseGenerationRequest(const std::string& body, Endpoint endpoint,
                                                         const tokenizer::Tokenizer& tokenizer,
                                                         int64_t max_seq_len);

// The messages of a chat request's "messages" field. INVALID_ARGUMENT naming the bad message.
absl::StatusOr<std::vector<tokenizer::ChatMessage>> ParseMessages(const Json& messages);

// Accumulated output of one choice.
struct ChoiceOutput {
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<SampledToken> logprobs;
  FinishReason finish = FinishReason::kNone;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// The "logprobs" object of a choice for `tokens` (completions: tokens, token_logprobs,
// top_logprobs, text_offset from `text_offset`; chat: {"content": [...]}).
Json LogprobsJson(Endpoint endpoint, const std::vector<SampledToken>& tokens,
                  const tokenizer::Tokenizer& tokenizer, int64_t text_offset);

// A JSON text that never throws on invalid UTF-8 (bytes replaced with U+FFFD).
std::string Dump(const Json& json);

}  // namespace serving

#endif  // SERVING_OPENAI_API_H_
