#include "serving/openai_api.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace serving {
namespace {

class OpenAiApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = *tokenizer::Tokenizer::FromFile("model/tokenizer/testdata/tiny_tokenizer.json");
  }
  absl::StatusOr<GenerationRequest> Parse(const std::string& body, Endpoint e) {
    return ParseGenerationRequest(body, e, *tok_, 128);
  }
  std::unique_ptr<tokenizer::Tokenizer> tok_;
};

TEST_F(OpenAiApiTest, CompletionsDefaultsAndFields) {
  absl::StatusOr<GenerationRequest> r =
      Parse(R"({"prompt": "Hello world"})", Endpoint::kCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompts.size(), 1u);
  EXPECT_EQ(r->prompts[0], *tok_->Encode("Hello world", true));
  EXPECT_EQ(r->params.max_tokens, 16);  // OpenAI's default for completions
  EXPECT_EQ(r->params.temperature, 1.0);
  EXPECT_FALSE(r->stream);
  r = Parse(R"({"prompt": [[1, 2], [3]], "n": 2, "max_tokens": 5, "temperature": 0, "top_p": 0.5,
               "top_k": -1, "seed": -3, "stop": "ab", "stop_token_ids": [7], "logprobs": 3,
               "stream": true, "stream_options": {"include_usage": true}, "unknown": {"x": 1}})",
            Endpoint::kCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompts.size(), 2u);
  EXPECT_EQ(r->n, 2);
  EXPECT_EQ(r->params.max_tokens, 5);
  EXPECT_EQ(r->params.top_k, 0);
  EXPECT_EQ(*r->params.seed, static_cast<uint64_t>(-3));
  EXPECT_EQ(r->params.stop, std::vector<std::string>{"ab"});
  EXPECT_EQ(r->params.stop_token_ids, std::vector<int32_t>{7});
  EXPECT_EQ(r->params.logprobs, 3);
  EXPECT_TRUE(r->stream && r->include_usage);
}

TEST_F(OpenAiApiTest, ChatRendersDeepSeekFormat) {
  absl::StatusOr<GenerationRequest> r = Parse(R"({"messages": [{"role": "system", "content": "S"},
                             {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
               "logprobs": true, "top_logprobs": 2, "max_completion_tokens": 9})",
                                              Endpoint::kChat);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<tokenizer::ChatMessage> messages = {{"system", "S"}, {"user", "Hi"}};
  EXPECT_EQ(r->prompts[0], *tokenizer::EncodeDeepSeekV3Chat(*tok_, messages, true));
  EXPECT_EQ(r->params.logprobs, 2);
  EXPECT_EQ(r->params.max_tokens, 9);
  r = Parse(R"({"messages": [{"role": "user", "content": "Hi"}]})", Endpoint::kChat);
  EXPECT_EQ(r->params.max_tokens, 128);  // what the context leaves
  EXPECT_EQ(r->params.logprobs, -1);
}

TEST_F(OpenAiApiTest, ErrorsNameTheField) {
  const auto message = [&](const std::string& body, Endpoint e) {
    absl::StatusOr<GenerationRequest> r = Parse(body, e);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << body;
    return std::string(r.status().message());
  };
  EXPECT_NE(message("{", Endpoint::kCompletions).find("JSON"), std::string::npos);
  EXPECT_NE(message("[]", Endpoint::kCompletions).find("object"), std::string::npos);
  EXPECT_EQ(message(R"({})", Endpoint::kCompletions).rfind("'prompt'", 0), 0u);
  EXPECT_EQ(message(R"({"prompt": ""})", Endpoint::kCompletions).rfind("'prompt'", 0), 0u);
  EXPECT_EQ(message(R"({"prompt": "a", "max_tokens": 0})", Endpoint::kCompletions)
                .rfind("'max_tokens'", 0),
            0u);
  EXPECT_EQ(message(R"({"prompt": "a", "max_tokens": 1e3})", Endpoint::kCompletions)
                .rfind("'max_tokens'", 0),
            0u);
  EXPECT_EQ(
      message(R"({"prompt": "a", "max_tokens": 99999999999999999999})", Endpoint::kCompletions)
          .rfind("'max_tokens'", 0),
      0u);
  EXPECT_EQ(message(R"({"prompt": "a", "temperature": "x"})", Endpoint::kCompletions)
                .rfind("'temperature'", 0),
            0u);
  EXPECT_EQ(message(R"({"prompt": "a", "stop": [1]})", Endpoint::kCompletions).rfind("'stop'", 0),
            0u);
  EXPECT_EQ(message(R"({"prompt": [-1]})", Endpoint::kCompletions).rfind("'prompt'", 0), 0u);
  EXPECT_EQ(message(R"({"messages": []})", Endpoint::kChat).rfind("'messages'", 0), 0u);
  EXPECT_EQ(message(R"({"messages": [{"role": "x", "content": "a"}]})", Endpoint::kChat)
                .rfind("'messages[0].role'", 0),
            0u);
  EXPECT_EQ(
      message("{\"prompt\": \"a\xff\"}", Endpoint::kCompletions).find("UTF-8") != std::string::npos,
      true);
}

TEST_F(OpenAiApiTest, ErrorShapes) {
  const ApiError e = ErrorFromStatus(absl::ResourceExhaustedError("full"));
  EXPECT_EQ(e.status, 429);
  const Json j = e.ToJson();
  EXPECT_EQ(j["error"]["message"], "full");
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_EQ(ErrorFromStatus(absl::InvalidArgumentError("x")).status, 400);
  EXPECT_EQ(ErrorFromStatus(absl::NotFoundError("x")).status, 404);
  EXPECT_EQ(ErrorFromStatus(absl::UnavailableError("x")).status, 503);
  // Invalid UTF-8 in output never throws.
  EXPECT_EQ(Dump(Json{{"t", std::string("a\xff")}}), "{\"t\":\"a\xEF\xBF\xBD\"}");
}

TEST_F(OpenAiApiTest, LogprobsShapes) {
  SampledToken t{5, -0.5f, {{5, -0.5f}, {6, -1.5f}}};
  const Json completion = LogprobsJson(Endpoint::kCompletions, {t, t}, *tok_, 3);
  EXPECT_EQ(completion["tokens"].size(), 2u);
  EXPECT_EQ(completion["text_offset"][0], 3);
  EXPECT_EQ(completion["text_offset"][1], 3 + static_cast<int64_t>(tok_->TokenBytes(5).size()));
  EXPECT_EQ(completion["top_logprobs"][0].size(), 2u);
  const Json chat = LogprobsJson(Endpoint::kChat, {t}, *tok_, 0);
  EXPECT_EQ(chat["content"][0]["logprob"], -0.5);
  EXPECT_EQ(chat["content"][0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(chat["content"][0]["bytes"].size(), tok_->TokenBytes(5).size());
}

}  // namespace
}  // namespace serving
