#include "serving/engine.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/config.h"
#include "model/init.h"
#include "serving/test_models.h"

namespace serving {
namespace {

// The main job's model shape with seeded weights and the tiny tokenizer's vocabulary.
LoadedModel TinyModel() {
  return SeededTinyModel("serving/testdata/tiny_cpu.textproto", 96, /*seed=*/5);
}

std::vector<int32_t> Prompt(int64_t n, uint64_t seed) { return SeededPrompt(n, seed); }

struct Result {
  std::vector<int32_t> ids;
  std::string text;
  FinishReason finish = FinishReason::kNone;
  std::vector<SampledToken> logprobs;
};

// Runs the engine's steps on this thread until every stream has finished.
std::vector<Result> RunAll(Engine* engine, const std::vector<std::shared_ptr<RequestStream>>& s) {
  std::vector<Result> results(s.size());
  size_t done = 0;
  while (done < s.size()) {
    absl::StatusOr<bool> worked = engine->Step();
    EXPECT_TRUE(worked.ok()) << worked.status();
    for (size_t i = 0; i < s.size(); ++i) {
      while (std::optional<RequestOutput> out = s[i]->Next(absl::ZeroDuration())) {
        results[i].ids.insert(results[i].ids.end(), out->token_ids.begin(), out->token_ids.end());
        results[i].text += out->text;
        results[i].logprobs.insert(results[i].logprobs.end(), out->logprobs.begin(),
                                   out->logprobs.end());
        if (out->finish != FinishReason::kNone) {
          results[i].finish = out->finish;
          ++done;
        }
      }
    }
    if (!*worked && done < s.size()) {
      ADD_FAILURE() << "the engine idles with unfinished requests";
      break;
    }
  }
  return results;
}

std::unique_ptr<Engine> MakeEngine(LoadedModel* m, EngineOptions options = {}) {
  options.threads = 2;
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(m, options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return *std::move(engine);
}

SamplingParams Greedy(int64_t max_tokens) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  return p;
}

Result Alone(LoadedModel* m, const std::vector<int32_t>& prompt, const SamplingParams& params) {
  std::unique_ptr<Engine> engine = MakeEngine(m);
  return RunAll(engine.get(), {*engine->Submit(prompt, params)})[0];
}

// A greedy request's output is identical alone and batched with 31 others, with chunked prefill
// (a small token budget) and with a KV cache so small that sequences are preempted and recomputed.
TEST(EngineTest, GreedyOutputIsTheSameAloneAndBatched) {
  LoadedModel m = TinyModel();
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 32; ++i) prompts.push_back(Prompt(3 + (i * 7) % 40, 1000 + i));
  std::vector<Result> alone;
  for (int i : {0, 5, 31}) alone.push_back(Alone(&m, prompts[i], Greedy(24)));
  EXPECT_EQ(alone[0].ids.size(), 24u);
  EXPECT_EQ(alone[0].finish, FinishReason::kLength);
  for (const EngineOptions& options :
       {EngineOptions{}, EngineOptions{.max_batch_tokens = 16},
        EngineOptions{.kv_cache_blocks = 40, .block_size = 4, .max_batch_tokens = 48}}) {
    std::unique_ptr<Engine> engine = MakeEngine(&m, options);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const auto& p : prompts) streams.push_back(*engine->Submit(p, Greedy(24)));
    const std::vector<Result> batched = RunAll(engine.get(), streams);
    EXPECT_EQ(batched[0].ids, alone[0].ids) << "budget " << options.max_batch_tokens;
    EXPECT_EQ(batched[5].ids, alone[1].ids) << "budget " << options.max_batch_tokens;
    EXPECT_EQ(batched[31].ids, alone[2].ids) << "budget " << options.max_batch_tokens;
    EXPECT_EQ(batched[0].text, alone[0].text);
    if (options.kv_cache_blocks > 0) {
      EXPECT_GT(engine->Stats().preemptions, 0) << "the small cache should preempt";
    }
    EXPECT_EQ(engine->Stats().kv_blocks_used, 0);
    EXPECT_EQ(engine->Stats().generation_tokens, 32 * 24);
  }
}

TEST(EngineTest, SeededSamplingIsReproducible) {
  LoadedModel m = TinyModel();
  SamplingParams params;
  params.temperature = 0.9;
  params.top_p = 0.95;
  params.top_k = 50;
  params.seed = 1234;
  params.max_tokens = 20;
  params.ignore_eos = true;
  const std::vector<int32_t> prompt = Prompt(10, 1);
  const Result a = Alone(&m, prompt, params);
  std::unique_ptr<Engine> engine = MakeEngine(&m);
  std::vector<std::shared_ptr<RequestStream>> streams = {*engine->Submit(prompt, params)};
  SamplingParams other = params;
  other.seed = 99;
  for (int i = 0; i < 7; ++i) streams.push_back(*engine->Submit(Prompt(5 + i, 50 + i), other));
  streams.push_back(*engine->Submit(prompt, other));
  const std::vector<Result> batched = RunAll(engine.get(), streams);
  EXPECT_EQ(batched[0].ids, a.ids);
  EXPECT_NE(batched.back().ids, a.ids);  // another seed, another sample
}

TEST(EngineTest, StopStringsTokensAndLogprobs) {
  LoadedModel m = TinyModel();
  const std::vector<int32_t> prompt = Prompt(8, 3);
  const Result full = Alone(&m, prompt, Greedy(30));
  ASSERT_GT(full.text.size(), 12u);
  // A stop string from the middle of the output: the text ends just before it.
  const std::string stop = full.text.substr(full.text.size() / 2, 3);
  SamplingParams params = Greedy(30);
  params.stop = {stop};
  params.logprobs = 2;
  const Result stopped = Alone(&m, prompt, params);
  EXPECT_EQ(stopped.finish, FinishReason::kStop);
  EXPECT_EQ(stopped.text, full.text.substr(0, full.text.find(stop)));
  ASSERT_EQ(stopped.logprobs.size(), stopped.ids.size());
  for (size_t i = 0; i < stopped.ids.size(); ++i) {
    EXPECT_EQ(stopped.logprobs[i].id, stopped.ids[i]);
    ASSERT_EQ(stopped.logprobs[i].top.size(), 2u);
    EXPECT_EQ(stopped.logprobs[i].top[0].id, stopped.ids[i]);  // greedy: the best
    EXPECT_LE(stopped.logprobs[i].logprob, 0.0f);
  }
  // A stop token id: the output ends at its first occurrence.
  params = Greedy(30);
  params.stop_token_ids = {full.ids[4]};
  const Result by_id = Alone(&m, prompt, params);
  EXPECT_EQ(by_id.finish, FinishReason::kStop);
  const size_t first = std::find(full.ids.begin(), full.ids.end(), full.ids[4]) - full.ids.begin();
  EXPECT_EQ(by_id.ids.size(), first + 1);
}

TEST(EngineTest, ChunkedPrefillDoesNotStallDecodes) {
  LoadedModel m = TinyModel();
  std::unique_ptr<Engine> engine = MakeEngine(&m, {.max_batch_tokens = 8});
  std::shared_ptr<RequestStream> decoding = *engine->Submit(Prompt(4, 1), Greedy(40));
  ASSERT_TRUE(*engine->Step());  // prefill: the first token
  ASSERT_TRUE(decoding->Next(absl::ZeroDuration()).has_value());
  std::shared_ptr<RequestStream> long_prompt = *engine->Submit(Prompt(80, 2), Greedy(2));
  // The long prompt takes 80 / 7 steps of prefill; the running request gets a token every step.
  for (int step = 0; step < 12; ++step) {
    ASSERT_TRUE(*engine->Step());
    std::optional<RequestOutput> out = decoding->Next(absl::ZeroDuration());
    ASSERT_TRUE(out.has_value()) << "step " << step;
    EXPECT_EQ(out->token_ids.size(), 1u);
  }
  EXPECT_TRUE(long_prompt->Next(absl::ZeroDuration()).has_value());
}

TEST(EngineTest, ErrorsAndCancellation) {
  LoadedModel m = TinyModel();
  std::unique_ptr<Engine> engine = MakeEngine(&m, {.max_waiting = 2});
  EXPECT_EQ(engine->Submit({}, Greedy(1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Submit({-1}, Greedy(1)).status().code(), absl::StatusCode::kInvalidArgument);
  const absl::Status too_long = engine->Submit(Prompt(96, 1), Greedy(1)).status();
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.message().find("96"), std::string::npos) << too_long;
  SamplingParams bad = Greedy(1);
  bad.top_p = 2;
  EXPECT_EQ(engine->Submit({1}, bad).status().code(), absl::StatusCode::kInvalidArgument);
  std::shared_ptr<RequestStream> a = *engine->Submit(Prompt(10, 1), Greedy(50));
  std::shared_ptr<RequestStream> b = *engine->Submit(Prompt(10, 2), Greedy(50));
  EXPECT_EQ(engine->Submit(Prompt(10, 3), Greedy(50)).status().code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(*engine->Step());
  EXPECT_GT(engine->Stats().kv_blocks_used, 0);
  a->Cancel();
  b->Cancel();
  (void)*engine->Step();
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);
  std::optional<RequestOutput> last;
  while (std::optional<RequestOutput> out = a->Next(absl::ZeroDuration())) last = out;
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->finish, FinishReason::kAbort);
  EXPECT_EQ(engine->Stats().finished["abort"], 2);
  // The context limit lowers max_tokens: finish "length" at max_seq_len.
  const Result r = Alone(&m, Prompt(90, 4), Greedy(100));
  EXPECT_EQ(r.ids.size(), 6u);
  EXPECT_EQ(r.finish, FinishReason::kLength);
}

TEST(EngineTest, BackgroundThreadAndMetrics) {
  LoadedModel m = TinyModel();
  std::unique_ptr<Engine> engine = MakeEngine(&m);
  engine->Start();
  std::shared_ptr<RequestStream> s = *engine->Submit(Prompt(5, 1), Greedy(5));
  int64_t tokens = 0;
  while (std::optional<RequestOutput> out = s->Next(absl::Seconds(30))) {
    tokens += static_cast<int64_t>(out->token_ids.size());
    if (out->finish != FinishReason::kNone) break;
  }
  EXPECT_EQ(tokens, 5);
  const std::string metrics = engine->Metrics();
  EXPECT_NE(metrics.find("dsmoe_generation_tokens_total 5\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("dsmoe_request_success_total{finished_reason=\"length\"} 1\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("dsmoe_time_to_first_token_seconds_count 1\n"), std::string::npos);
}

}  // namespace
}  // namespace serving
