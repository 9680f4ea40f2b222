#include "serving/kernels.h"

#include <cmath>

#include "core/thread_pool.h"
#include "gtest/gtest.h"
#include "model/init.h"

namespace serving {
namespace {

TEST(KernelsTest, DotMatchesDouble) {
  for (int64_t n : {0, 1, 7, 8, 9, 96, 1001}) {
    const Mat a = model::RandomMatrix<float>(1, n, 1);
    const Mat b = model::RandomMatrix<float>(1, n, 2);
    double want = 0;
    for (int64_t i = 0; i < n; ++i) want += static_cast<double>(a(0, i)) * b(0, i);
    EXPECT_NEAR(Dot(a.data(), b.data(), n), want, 1e-5 * (1 + std::sqrt(n))) << n;
  }
}

TEST(KernelsTest, MatMulTMatchesEigenAndIsBatchInvariant) {
  core::ThreadPool pool(3);
  const Mat w = model::RandomMatrix<float>(70, 96, 3);
  const Mat x = model::RandomMatrix<float>(33, 96, 4);
  const Mat want = x * w.transpose();
  const Mat got = MatMulT(x, w, &pool);
  EXPECT_LT((got - want).cwiseAbs().maxCoeff(), 1e-4);
  // Every row alone, and through one thread, is bit-identical to the batched row.
  for (int64_t i = 0; i < x.rows(); ++i) {
    const Mat alone = MatMulT(x.middleRows(i, 1), w, nullptr);
    EXPECT_TRUE(alone.row(0) == got.row(i)) << "row " << i;
  }
  EXPECT_TRUE(MatMulT(x, w, nullptr) == got);
  // Each element is Dot's value exactly, whatever block of columns computed it.
  for (int64_t i = 0; i < x.rows(); i += 5) {
    for (int64_t j = 0; j < w.rows(); ++j) {
      EXPECT_EQ(got(i, j), Dot(x.row(i).data(), w.row(j).data(), 96)) << i << "," << j;
    }
  }
}

TEST(KernelsTest, ExpIsWithinTwoUlpOfStdExp) {
  float worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.001234f) {
    const float want = std::exp(x);
    const float ulp = std::nextafter(want, INFINITY) - want;
    worst = std::max(worst, std::fabs(Exp(x) - want) / ulp);
  }
  EXPECT_LE(worst, 2.0f);
  EXPECT_EQ(Exp(0.0f), 1.0f);
  EXPECT_LT(Exp(-1000.0f), 1e-37f);
  EXPECT_GT(Exp(1000.0f), 1e38f);
}

TEST(KernelsTest, RmsNormAndSwiGlu) {
  const Mat x = model::RandomMatrix<float>(5, 12, 5);
  const Mat scale = model::RandomMatrix<float>(1, 12, 6);
  const Mat y = RmsNormRows(x, scale, 1e-6f);
  for (int64_t i = 0; i < 5; ++i) {
    const double rms = std::sqrt(x.row(i).squaredNorm() / 12 + 1e-6);
    for (int64_t c = 0; c < 12; ++c) EXPECT_NEAR(y(i, c), x(i, c) / rms * scale(0, c), 1e-5);
  }
  const Mat g = model::RandomMatrix<float>(3, 9, 7, 4.0);
  const Mat u = model::RandomMatrix<float>(3, 9, 8);
  const Mat s = SwiGlu(g, u);
  for (int64_t i = 0; i < g.size(); ++i) {
    const double gi = g.data()[i];
    EXPECT_NEAR(s.data()[i], gi / (1 + std::exp(-gi)) * u.data()[i], 1e-5);
  }
  // Elementwise: a sub-block gives the same bits.
  EXPECT_TRUE(SwiGlu(g.topRows(1), u.topRows(1)).row(0) == s.row(0));
}

}  // namespace
}  // namespace serving
