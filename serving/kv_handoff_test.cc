// Prefill/decode disaggregation inside one process: a prefill engine exports a prompt's KV and
// first token, a decode engine imports them into blocks it allocated and continues; the outputs
// equal a colocated engine's, the blocks hold exactly the bytes sent, and an import that never
// arrives fails within the timeout and frees its blocks.
#include "serving/kv_handoff.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "model/config.h"
#include "model/init.h"
#include "serving/engine.h"
#include "serving/test_models.h"

namespace serving {
namespace {

LoadedModel TinyModel(const std::string& config) { return SeededTinyModel(config, 96, 5); }

std::vector<int32_t> Prompt(int64_t n, uint64_t seed) { return SeededPrompt(n, seed); }

std::unique_ptr<Engine> MakeEngine(LoadedModel* m, EngineOptions options = {}) {
  options.threads = 1;
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(m, options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  (*engine)->Start();
  return *std::move(engine);
}

struct Output {
  std::vector<int32_t> ids;
  std::string text;
  std::shared_ptr<const KvPages> kv;
  SampledToken first;
};

Output Drain(RequestStream* s) {
  Output o;
  while (std::optional<RequestOutput> out = s->Next(absl::Seconds(30))) {
    o.ids.insert(o.ids.end(), out->token_ids.begin(), out->token_ids.end());
    if (o.ids.size() == 1 && !out->logprobs.empty()) o.first = out->logprobs[0];
    o.text += out->text;
    if (out->kv != nullptr) o.kv = out->kv;
    if (out->finish != FinishReason::kNone) break;
  }
  return o;
}

// The engine's stats are updated at the end of a step, just after the last event went out.
int64_t BlocksUsedOnceIdle(Engine* engine) {
  for (int i = 0; i < 500 && engine->Stats().kv_blocks_used > 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  return engine->Stats().kv_blocks_used;
}

class HandoffTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HandoffTest, DisaggregatedEqualsColocated) {
  LoadedModel m = TinyModel(GetParam());
  std::unique_ptr<Engine> both = MakeEngine(&m);
  std::unique_ptr<Engine> prefill = MakeEngine(&m);
  EngineOptions decode_options;
  decode_options.block_size = 4;  // another block size than the prefill side's: pages are slots
  std::unique_ptr<Engine> decode = MakeEngine(&m, decode_options);

  const int kRequests = 6;
  std::vector<std::thread> threads;
  std::vector<Output> want(kRequests), got(kRequests);
  std::vector<uint64_t> sent(kRequests), received(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      SamplingParams params;
      params.temperature = i % 2 == 0 ? 0.0 : 0.8;  // greedy and seeded sampling
      params.seed = 100 + i;
      params.max_tokens = 12;
      params.ignore_eos = true;
      params.logprobs = 2;
      const std::vector<int32_t> prompt = Prompt(5 + 7 * i, i);
      want[i] = Drain(both->Submit(prompt, params).value().get());

      auto import = std::make_shared<KvImport>();
      std::shared_ptr<RequestStream> d = decode->Submit(prompt, params, {.import = import}).value();
      absl::StatusOr<std::vector<int32_t>> blocks = import->WaitBlocks(absl::Seconds(10));
      ASSERT_TRUE(blocks.ok()) << blocks.status();
      EXPECT_EQ(blocks->size(), (prompt.size() + 1 + 3) / 4);
      Output p = Drain(prefill->Submit(prompt, params, {.export_kv = true}).value().get());
      ASSERT_NE(p.kv, nullptr);
      ASSERT_EQ(p.ids.size(), 1u);
      EXPECT_EQ(p.kv->tokens, static_cast<int64_t>(prompt.size()));
      sent[i] = p.kv->Checksum();
      import->Complete(p.first, *p.kv, sent[i]);
      EXPECT_TRUE(import->WaitPlaced(absl::Seconds(10)).ok());
      got[i] = Drain(d.get());
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(got[i].ids, want[i].ids) << "request " << i;
    EXPECT_EQ(got[i].text, want[i].text) << "request " << i;
  }
  EXPECT_EQ(BlocksUsedOnceIdle(decode.get()), 0);
  EXPECT_EQ(BlocksUsedOnceIdle(prefill.get()), 0);
}

INSTANTIATE_TEST_SUITE_P(Models, HandoffTest,
                         ::testing::Values("serving/testdata/tiny_cpu.textproto",
                                           "serving/testdata/tiny_mla.textproto"));

TEST(HandoffTest, CorruptPagesFailAndFreeTheBlocks) {
  LoadedModel m = TinyModel("serving/testdata/tiny_cpu.textproto");
  std::unique_ptr<Engine> prefill = MakeEngine(&m);
  std::unique_ptr<Engine> decode = MakeEngine(&m);
  SamplingParams params;
  params.temperature = 0;
  params.seed = 1;
  const std::vector<int32_t> prompt = Prompt(20, 3);
  Output p = Drain(prefill->Submit(prompt, params, {.export_kv = true}).value().get());
  auto import = std::make_shared<KvImport>();
  std::shared_ptr<RequestStream> d = decode->Submit(prompt, params, {.import = import}).value();
  ASSERT_TRUE(import->WaitBlocks(absl::Seconds(10)).ok());
  const uint64_t checksum = p.kv->Checksum();
  KvPages corrupt = *p.kv;
  corrupt.data[17] += 1;
  import->Complete(p.first, corrupt, checksum);
  EXPECT_EQ(import->WaitPlaced(absl::Seconds(10)).code(), absl::StatusCode::kDataLoss);
  std::optional<RequestOutput> out = d->Next(absl::Seconds(10));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->finish, FinishReason::kAbort);
  EXPECT_EQ(BlocksUsedOnceIdle(decode.get()), 0);
}

TEST(HandoffTest, AnImportThatNeverArrivesTimesOutAndFreesItsBlocks) {
  LoadedModel m = TinyModel("serving/testdata/tiny_cpu.textproto");
  EngineOptions options;
  options.kv_import_timeout = absl::Milliseconds(300);
  std::unique_ptr<Engine> decode = MakeEngine(&m, options);
  SamplingParams params;
  params.seed = 1;
  auto import = std::make_shared<KvImport>();
  std::shared_ptr<RequestStream> d =
      decode->Submit(Prompt(30, 4), params, {.import = import}).value();
  ASSERT_TRUE(import->WaitBlocks(absl::Seconds(10)).ok());
  const absl::Time start = absl::Now();
  std::optional<RequestOutput> out = d->Next(absl::Seconds(10));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->finish, FinishReason::kAbort);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(import->WaitPlaced(absl::ZeroDuration()).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(BlocksUsedOnceIdle(decode.get()), 0);
  EXPECT_EQ(decode->Stats().importing, 0);
  // Without a seed an import is refused (both sides must draw from the same generator).
  EXPECT_FALSE(decode->Submit(Prompt(3, 1), SamplingParams{}, {.import = import}).ok());
}

}  // namespace
}  // namespace serving
