#include "model/rope.h"

#include <algorithm>
#include <cmath>

#include "gtest/gtest.h"
#include "model/init.h"

namespace model {
namespace {

TEST(RopeTest, RotatesPairsByPositionTimesFrequency) {
  // One head of width 4, sequences of 2: token 1 is at position 1; pair i turns by
  // 1 * 100^(-2i/4) = 1 and 0.1 radians.
  Matrix<double> x(2, 4);
  x << 1, 0, 1, 0,  //
      1, 0, 0, 1;
  ApplyRope(&x, 1, 4, 2, 100.0, /*inverse=*/false);
  EXPECT_DOUBLE_EQ(x(0, 0), 1);  // position 0 does not move
  EXPECT_DOUBLE_EQ(x(0, 1), 0);
  EXPECT_NEAR(x(1, 0), std::cos(1.0), 1e-15);
  EXPECT_NEAR(x(1, 1), std::sin(1.0), 1e-15);
  EXPECT_NEAR(x(1, 2), -std::sin(0.1), 1e-15);
  EXPECT_NEAR(x(1, 3), std::cos(0.1), 1e-15);
}

TEST(RopeTest, InverseUndoesForwardAndPositionsRestartPerSequence) {
  const Matrix<double> x = RandomMatrix<double>(6, 8, 1);
  Matrix<double> y = x;
  ApplyRope(&y, 2, 4, 3, 10000.0, /*inverse=*/false);
  EXPECT_TRUE(y.row(3).isApprox(x.row(3)));  // token 3 starts the second sequence
  EXPECT_FALSE(y.row(4).isApprox(x.row(4)));
  ApplyRope(&y, 2, 4, 3, 10000.0, /*inverse=*/true);
  EXPECT_TRUE(y.isApprox(x, 1e-14));
}

TEST(RopeTest, PlainSpecFromAConfigWithoutYarn) {
  ModelConfig config;
  config.set_rope_theta(100);
  config.set_max_seq_len(4096);  // == original_seq_len: YaRN stays off
  const RopeSpec spec = RopeSpec::FromConfig(config, 4);
  EXPECT_EQ(spec.inv_freq, RopeSpec::Plain(4, 100).inv_freq);
  EXPECT_EQ(spec.softmax_scale_factor, 1.0);
}

TEST(RopeTest, YarnBlendsFrequenciesAsTheReference) {
  // DeepSeek-V3: 64 rotated dims, theta 1e4, original context 4096, factor 40, betas 32 and 1.
  // Correction dims: 64 ln(4096 / (2 pi 32)) / (2 ln 1e4) = 10.47 -> low 10, and
  // 64 ln(4096 / (2 pi)) / (2 ln 1e4) = 22.5 -> high 23. Pairs up to 10 keep their frequency,
  // pairs from 23 on take frequency / 40, and pairs between blend linearly.
  ModelConfig config;
  config.set_rope_theta(10000);
  config.set_max_seq_len(16384);
  const RopeSpec spec = RopeSpec::FromConfig(config, 64);
  const RopeSpec plain = RopeSpec::Plain(64, 10000);
  ASSERT_EQ(spec.inv_freq.size(), 32u);
  for (int i = 0; i < 32; ++i) {
    const double ramp = std::clamp((i - 10) / 13.0, 0.0, 1.0);
    const double expected = plain.inv_freq[i] / 40 * ramp + plain.inv_freq[i] * (1 - ramp);
    EXPECT_NEAR(spec.inv_freq[i], expected, 1e-15 * plain.inv_freq[i]) << i;
  }
  EXPECT_EQ(spec.inv_freq[10], plain.inv_freq[10]);
  const double m = 0.1 * std::log(40.0) + 1;
  EXPECT_DOUBLE_EQ(spec.softmax_scale_factor, m * m);
}

TEST(RopeTest, YarnUsesTheConfiguredFields) {
  // 8 rotated dims, theta 100, original 64, factor 4, betas 4 and 2, mscale 0.5: correction dims
  // 8 ln(64 / (8 pi)) / (2 ln 100) = 0.81 -> low 0 and 8 ln(64 / (4 pi)) / (2 ln 100) = 1.41 ->
  // high 2.
  ModelConfig config;
  config.set_rope_theta(100);
  config.set_max_seq_len(128);
  config.set_original_seq_len(64);
  config.set_rope_factor(4);
  config.set_beta_fast(4);
  config.set_beta_slow(2);
  config.set_mscale(0.5);
  const RopeSpec spec = RopeSpec::FromConfig(config, 8);
  const RopeSpec plain = RopeSpec::Plain(8, 100);
  EXPECT_DOUBLE_EQ(spec.inv_freq[0], plain.inv_freq[0]);
  EXPECT_DOUBLE_EQ(spec.inv_freq[1], plain.inv_freq[1] / 4 * 0.5 + plain.inv_freq[1] * 0.5);
  EXPECT_DOUBLE_EQ(spec.inv_freq[2], plain.inv_freq[2] / 4);
  EXPECT_DOUBLE_EQ(spec.inv_freq[3], plain.inv_freq[3] / 4);
  const double m = 0.1 * 0.5 * std::log(4.0) + 1;
  EXPECT_DOUBLE_EQ(spec.softmax_scale_factor, m * m);
}

}  // namespace
}  // namespace model
