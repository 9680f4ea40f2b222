#include "model/init.h"

#include <cmath>

#include "gtest/gtest.h"

namespace model {
namespace {

TEST(RngTest, IsSplitMix64) {
  // The reference SplitMix64 sequence for seed 0.
  Rng rng(0);
  EXPECT_EQ(rng.Next(), 0xe220a8397b1dcdafull);
  EXPECT_EQ(rng.Next(), 0x6e789e6aa1b965f4ull);
}

TEST(RngTest, NormalHasUnitVariance) {
  Rng rng(42);
  double sum = 0, sum_sq = 0;
  constexpr int kDraws = 200000;
  for (int i = 0; i < kDraws; ++i) {
    const double v = rng.Normal();
    sum += v;
    sum_sq += v * v;
  }
  EXPECT_NEAR(sum / kDraws, 0.0, 0.01);
  EXPECT_NEAR(sum_sq / kDraws, 1.0, 0.01);
}

TEST(InitParamsTest, SameSeedSameWeightsWhateverTheOrder) {
  Param<float> a("a", 3, 4), b("b", 2, 2);
  Param<float> b2("b", 2, 2), a2("a", 3, 4);
  InitParams<float>({&a, &b}, 0.02, 7);
  InitParams<float>({&b2, &a2}, 0.02, 7);
  EXPECT_TRUE(a.value == a2.value);
  EXPECT_TRUE(b.value == b2.value);
  Param<float> a3("a", 3, 4);
  InitParams<float>({&a3}, 0.02, 8);
  EXPECT_FALSE(a.value == a3.value);
  Param<float> c("c", 3, 4);
  InitParams<float>({&c}, 0.02, 7);
  EXPECT_FALSE(a.value == c.value) << "different names draw different values";
}

TEST(InitParamsTest, KindsInitialiseAsDocumented) {
  Param<double> w("w", 100, 100), g("g", 1, 5, ParamKind::kNormScale);
  Param<double> bias("b", 1, 5, ParamKind::kBuffer);
  g.grad.setConstant(3);
  bias.value.setConstant(3);
  InitParams<double>({&w, &g, &bias}, 0.5, 1);
  const double mean = w.value.mean();
  const double std = std::sqrt((w.value.array() - mean).square().mean());
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(std, 0.5, 0.02);
  EXPECT_TRUE(g.value.isOnes());
  EXPECT_TRUE(g.grad.isZero());
  EXPECT_TRUE(bias.value.isZero());
  EXPECT_EQ(bias.grad.size(), 0);
}

TEST(RandomMatrixTest, IsSeededAndBounded) {
  const Matrix<float> m = RandomMatrix<float>(20, 30, 5, 2.0);
  EXPECT_TRUE(m == RandomMatrix<float>(20, 30, 5, 2.0));
  EXPECT_FALSE(m == RandomMatrix<float>(20, 30, 6, 2.0));
  EXPECT_LE(m.maxCoeff(), 2.0f);
  EXPECT_GE(m.minCoeff(), -2.0f);
}

}  // namespace
}  // namespace model
