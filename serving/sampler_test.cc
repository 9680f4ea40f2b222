#include "serving/sampler.h"

#include <cmath>
#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace serving {
namespace {

TEST(SamplerTest, GreedyTakesTheBestLowestId) {
  const std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f};
  SamplingParams params;
  params.temperature = 0;
  model::Rng rng(1);
  EXPECT_EQ(Sample(logits.data(), 4, params, &rng).id, 1);
  // Only ids below vocab are candidates.
  const std::vector<float> high = {0.5f, 0.0f, 0.0f, 9.0f};
  EXPECT_EQ(Sample(high.data(), 3, params, &rng).id, 0);
  // top_k 1 is greedy at any temperature.
  params.temperature = 1;
  params.top_k = 1;
  EXPECT_EQ(Sample(logits.data(), 4, params, &rng).id, 1);
}

TEST(SamplerTest, LogprobsAreOfTheRawDistribution) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  SamplingParams params;
  params.temperature = 0;
  params.logprobs = 2;
  model::Rng rng(1);
  const SampledToken t = Sample(logits.data(), 3, params, &rng);
  const double z = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_EQ(t.id, 2);
  EXPECT_NEAR(t.logprob, 3.0 - z, 1e-6);
  ASSERT_EQ(t.top.size(), 2u);
  EXPECT_EQ(t.top[0].id, 2);
  EXPECT_EQ(t.top[1].id, 1);
  EXPECT_NEAR(t.top[1].logprob, 2.0 - z, 1e-6);
}

TEST(SamplerTest, SeededSamplingIsReproducibleAndFollowsTheDistribution) {
  const std::vector<float> logits = {0.0f, std::log(3.0f), -100.0f};
  SamplingParams params;
  model::Rng a(42), b(42);
  std::map<int32_t, int> counts;
  for (int i = 0; i < 4000; ++i) {
    const int32_t x = Sample(logits.data(), 3, params, &a).id;
    EXPECT_EQ(x, Sample(logits.data(), 3, params, &b).id);
    ++counts[x];
  }
  EXPECT_NEAR(counts[1] / 4000.0, 0.75, 0.03);
  EXPECT_EQ(counts[2], 0);
}

TEST(SamplerTest, TopKAndTopPFilter) {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  model::Rng rng(7);
  SamplingParams top_k;
  top_k.top_k = 2;
  SamplingParams top_p;
  top_p.top_p = 0.7;  // 0.5 + 0.3 reaches it: ids 0 and 1
  SamplingParams cold;
  cold.temperature = 0.05;  // nearly greedy
  int cold_best = 0;
  for (int i = 0; i < 2000; ++i) {
    EXPECT_LT(Sample(logits.data(), 4, top_k, &rng).id, 2);
    EXPECT_LT(Sample(logits.data(), 4, top_p, &rng).id, 2);
    cold_best += Sample(logits.data(), 4, cold, &rng).id == 0;
  }
  EXPECT_GT(cold_best, 1990);
}

TEST(SamplerTest, ValidateNamesTheField) {
  SamplingParams p;
  EXPECT_TRUE(p.Validate().ok());
  p.temperature = -1;
  EXPECT_NE(p.Validate().message().find("temperature"), std::string::npos);
  p = SamplingParams();
  p.top_p = 0;
  EXPECT_NE(p.Validate().message().find("top_p"), std::string::npos);
  p = SamplingParams();
  p.max_tokens = 0;
  EXPECT_NE(p.Validate().message().find("max_tokens"), std::string::npos);
  p = SamplingParams();
  p.stop = {""};
  EXPECT_FALSE(p.Validate().ok());
}

}  // namespace
}  // namespace serving
