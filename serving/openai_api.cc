#include "serving/openai_api.h"

#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace serving {
namespace {

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("'", field, "' ", what));
}

bool Present(const Json& j, const char* field) {
  auto it = j.find(field);
  return it != j.end() && !it->is_null();
}

absl::StatusOr<std::optional<int64_t>> OptInt(const Json& j, const char* field, int64_t lo,
                                              int64_t hi) {
  if (!Present(j, field)) return std::optional<int64_t>();
  const Json& v = j.at(field);
  if (!v.is_number_integer()) return Bad(field, "must be an integer");
  if (v.is_number_unsigned() &&
      v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Bad(field, absl::StrCat("must be at most ", hi));
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", x));
  return std::optional<int64_t>(x);
}

absl::StatusOr<std::optional<double>> OptNumber(const Json& j, const char* field, double lo,
                                                double hi) {
  if (!Present(j, field)) return std::optional<double>();
  const Json& v = j.at(field);
  if (!v.is_number()) return Bad(field, "must be a number");
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) {
    return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", x));
  }
  return std::optional<double>(x);
}

absl::StatusOr<bool> OptBool(const Json& j, const char* field, bool fallback) {
  if (!Present(j, field)) return fallback;
  if (!j.at(field).is_boolean()) return Bad(field, "must be a boolean");
  return j.at(field).get<bool>();
}

absl::StatusOr<std::vector<int32_t>> TokenIds(const Json& v, const std::string& field) {
  std::vector<int32_t> ids;
  for (const Json& x : v) {
    if (!x.is_number_integer()) return Bad(field, "must hold integer token ids");
    const int64_t id = x.is_number_unsigned() && x.get<uint64_t>() > (1ull << 31)
                           ? (int64_t{1} << 31)
                           : x.get<int64_t>();
    if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
      return Bad(field, absl::StrCat("has token id ", id, " outside the vocabulary"));
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

absl::StatusOr<std::vector<int32_t>> Encode(const tokenizer::Tokenizer& tok, const std::string& s,
                                            const std::string& field) {
  absl::StatusOr<std::vector<int32_t>> ids = tok.Encode(s, /*add_special_tokens=*/true);
  if (!ids.ok()) return Bad(field, std::string(ids.status().message()));
  return ids;
}

// Completions' "prompt": a string, strings, token ids, or lists of token ids.
absl::Status ParsePrompt(const Json& body, const tokenizer::Tokenizer& tok,
                         GenerationRequest* req) {
  if (!Present(body, "prompt")) return Bad("prompt", "is required");
  const Json& p = body.at("prompt");
  if (p.is_string()) {
    req->prompt_texts.push_back(p.get<std::string>());
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, Encode(tok, req->prompt_texts.back(), "prompt"));
    req->prompts.push_back(std::move(ids));
  } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, TokenIds(p, "prompt"));
    req->prompts.push_back(std::move(ids));
  } else if (p.is_array() && !p.empty()) {
    for (const Json& x : p) {
      if (x.is_string()) {
        req->prompt_texts.push_back(x.get<std::string>());
        ASSIGN_OR_RETURN(std::vector<int32_t> ids, Encode(tok, req->prompt_texts.back(), "prompt"));
        req->prompts.push_back(std::move(ids));
      } else if (x.is_array()) {
        ASSIGN_OR_RETURN(std::vector<int32_t> ids, TokenIds(x, "prompt"));
        req->prompts.push_back(std::move(ids));
      } else {
        return Bad("prompt", "must be a string, strings, token ids or lists of token ids");
      }
    }
  } else {
    return Bad("prompt", "must be a non-empty string, strings, token ids or lists of token ids");
  }
  for (const std::vector<int32_t>& ids : req->prompts) {
    if (ids.empty()) return Bad("prompt", "must not be empty");
  }
  if (req->prompts.size() > 64) return Bad("prompt", "holds more than 64 prompts");
  return absl::OkStatus();
}

}  // namespace

Json ApiError::ToJson() const {
  Json error = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) error["param"] = param;
  if (!code.empty()) error["code"] = code;
  return Json{{"error", error}};
}

ApiError ErrorFromStatus(const absl::Status& status) {
  ApiError e;
  e.message = std::string(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      e.status = 400;
      break;
    case absl::StatusCode::kNotFound:
      e.status = 404;
      e.type = "not_found_error";
      break;
    case absl::StatusCode::kResourceExhausted:
      e.status = 429;
      e.type = "rate_limit_error";
      break;
    case absl::StatusCode::kUnavailable:
      e.status = 503;
      e.type = "service_unavailable";
      break;
    default:
      e.status = 500;
      e.type = "internal_error";
  }
  return e;
}

absl::StatusOr<std::vector<tokenizer::ChatMessage>> ParseMessages(const Json& messages) {
  if (!messages.is_array() || messages.empty()) {
    return Bad("messages", "must be a non-empty array");
  }
  std::vector<tokenizer::ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    const std::string field = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return Bad(field, "must be an object");
    if (!Present(m, "role") || !m.at("role").is_string()) {
      return Bad(field + ".role", "must be a string");
    }
    tokenizer::ChatMessage message;
    message.role = m.at("role").get<std::string>();
    if (message.role == "developer") message.role = "system";
    if (message.role != "system" && message.role != "user" && message.role != "assistant" &&
        message.role != "tool") {
      return Bad(field + ".role",
                 absl::StrCat("must be system, user, assistant or tool, got '", message.role, "'"));
    }
    if (!Present(m, "content")) {
      if (message.role != "assistant") return Bad(field + ".content", "is required");
    } else if (m.at("content").is_string()) {
      message.content = m.at("content").get<std::string>();
    } else if (m.at("content").is_array()) {
      for (const Json& part : m.at("content")) {
        if (!part.is_object() || !Present(part, "type") || part.at("type") != "text" ||
            !Present(part, "text") || !part.at("text").is_string()) {
          return Bad(field + ".content", "parts must be {\"type\": \"text\", \"text\": string}");
        }
        message.content += part.at("text").get<std::string>();
      }
    } else {
      return Bad(field + ".content", "must be a string or an array of text parts");
    }
    out.push_back(std::move(message));
  }
  return out;
}

absl::StatusOr<GenerationRequest> ParseGenerationRequest(const std::string& body, Endpoint endpoint,
                                                         const tokenizer::Tokenizer& tokenizer,
                                                         int64_t max_seq_len) {
  const Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(
        "the body is not valid JSON (or holds text that is not valid UTF-8)");
  }
  if (!j.is_object()) return absl::InvalidArgumentError("the body must be a JSON object");
  GenerationRequest req;
  req.endpoint = endpoint;
  if (Present(j, "model")) {
    if (!j.at("model").is_string()) return Bad("model", "must be a string");
    req.model = j.at("model").get<std::string>();
  }
  constexpr int64_t kMaxInt = int64_t{1} << 40;
  SamplingParams& p = req.params;
  if (endpoint == Endpoint::kCompletions) {
    RETURN_IF_ERROR(ParsePrompt(j, tokenizer, &req));
    p.max_tokens = 16;
    ASSIGN_OR_RETURN(std::optional<int64_t> logprobs, OptInt(j, "logprobs", 0, 20));
    if (logprobs.has_value()) p.logprobs = *logprobs;
    ASSIGN_OR_RETURN(req.echo, OptBool(j, "echo", false));
  } else {
    if (!Present(j, "messages")) return Bad("messages", "is required");
    ASSIGN_OR_RETURN(std::vector<tokenizer::ChatMessage> messages, ParseMessages(j.at("messages")));
    absl::StatusOr<std::vector<int32_t>> ids =
        tokenizer::EncodeDeepSeekV3Chat(tokenizer, messages, /*add_generation_prompt=*/true);
    if (!ids.ok()) return Bad("messages", std::string(ids.status().message()));
    req.prompts.push_back(*std::move(ids));
    p.max_tokens = max_seq_len;  // what the context leaves (the engine lowers it)
    ASSIGN_OR_RETURN(const bool logprobs, OptBool(j, "logprobs", false));
    ASSIGN_OR_RETURN(std::optional<int64_t> top, OptInt(j, "top_logprobs", 0, 20));
    if (logprobs) p.logprobs = top.value_or(0);
    ASSIGN_OR_RETURN(std::optional<int64_t> max_completion,
                     OptInt(j, "max_completion_tokens", 1, kMaxInt));
    if (max_completion.has_value()) {
      p.max_tokens = *max_completion;
      req.max_tokens_given = true;
    }
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> max_tokens, OptInt(j, "max_tokens", 1, kMaxInt));
  if (max_tokens.has_value()) {
    p.max_tokens = *max_tokens;
    req.max_tokens_given = true;
  }
  ASSIGN_OR_RETURN(std::optional<double> temperature, OptNumber(j, "temperature", 0, 2));
  p.temperature = temperature.value_or(1.0);
  ASSIGN_OR_RETURN(std::optional<double> top_p, OptNumber(j, "top_p", 0, 1));
  p.top_p = top_p.value_or(1.0);
  if (p.top_p == 0) return Bad("top_p", "must be greater than 0");
  ASSIGN_OR_RETURN(std::optional<int64_t> top_k, OptInt(j, "top_k", -1, kMaxInt));
  p.top_k = top_k.value_or(0) < 0 ? 0 : top_k.value_or(0);
  ASSIGN_OR_RETURN(std::optional<int64_t> n, OptInt(j, "n", 1, 16));
  req.n = n.value_or(1);
  if (req.n * static_cast<int64_t>(req.prompts.size()) > 64) {
    return Bad("n", "times the prompts must be at most 64");
  }
  ASSIGN_OR_RETURN(
      std::optional<int64_t> seed,
      OptInt(j, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
  if (seed.has_value()) p.seed = static_cast<uint64_t>(*seed);
  for (const char* penalty : {"presence_penalty", "frequency_penalty"}) {
    ASSIGN_OR_RETURN(std::optional<double> unused, OptNumber(j, penalty, -2, 2));
    (void)unused;
  }
  if (Present(j, "stop")) {
    const Json& stop = j.at("stop");
    if (stop.is_string()) {
      p.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array()) {
      for (const Json& s : stop) {
        if (!s.is_string()) return Bad("stop", "must be a string or an array of strings");
        p.stop.push_back(s.get<std::string>());
      }
    } else {
      return Bad("stop", "must be a string or an array of strings");
    }
    if (p.stop.size() > 16) return Bad("stop", "holds more than 16 strings");
    for (const std::string& s : p.stop) {
      if (s.empty()) return Bad("stop", "must not hold empty strings");
    }
  }
  if (Present(j, "stop_token_ids")) {
    if (!j.at("stop_token_ids").is_array()) return Bad("stop_token_ids", "must be an array");
    ASSIGN_OR_RETURN(p.stop_token_ids, TokenIds(j.at("stop_token_ids"), "stop_token_ids"));
  }
  ASSIGN_OR_RETURN(p.ignore_eos, OptBool(j, "ignore_eos", false));
  ASSIGN_OR_RETURN(req.stream, OptBool(j, "stream", false));
  if (Present(j, "stream_options")) {
    if (!j.at("stream_options").is_object()) return Bad("stream_options", "must be an object");
    ASSIGN_OR_RETURN(req.include_usage, OptBool(j.at("stream_options"), "include_usage", false));
  }
  RETURN_IF_ERROR(p.Validate());
  return req;
}

Json LogprobsJson(Endpoint endpoint, const std::vector<SampledToken>& tokens,
                  const tokenizer::Tokenizer& tokenizer, int64_t text_offset) {
  const auto text = [&](int32_t id) {
    return tokenizer.IsValidId(id) ? tokenizer.TokenBytes(id) : std::string();
  };
  const auto bytes = [&](int32_t id) {
    Json b = Json::array();
    for (unsigned char c : text(id)) b.push_back(static_cast<int>(c));
    return b;
  };
  if (endpoint == Endpoint::kChat) {
    Json content = Json::array();
    for (const SampledToken& t : tokens) {
      Json top = Json::array();
      for (const TokenLogprob& alt : t.top) {
        top.push_back(
            {{"token", text(alt.id)}, {"logprob", alt.logprob}, {"bytes", bytes(alt.id)}});
      }
      content.push_back({{"token", text(t.id)},
                         {"logprob", t.logprob},
                         {"bytes", bytes(t.id)},
                         {"top_logprobs", top}});
    }
    return Json{{"content", content}};
  }
  Json out = {{"tokens", Json::array()},
              {"token_logprobs", Json::array()},
              {"top_logprobs", Json::array()},
              {"text_offset", Json::array()}};
  int64_t offset = text_offset;
  for (const SampledToken& t : tokens) {
    out["tokens"].push_back(text(t.id));
    out["token_logprobs"].push_back(t.logprob);
    Json top = Json::object();
    for (const TokenLogprob& alt : t.top) top[text(alt.id)] = alt.logprob;
    out["top_logprobs"].push_back(top);
    out["text_offset"].push_back(offset);
    offset += static_cast<int64_t>(text(t.id).size());
  }
  return out;
}

std::string Dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace serving
