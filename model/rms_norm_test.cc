#include "model/rms_norm.h"

#include <cmath>

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

TEST(RmsNormTest, NormalisesRows) {
  RmsNorm<double> norm("g", 2, 1e-12);
  InitParams(norm.Params(), 1.0, 0);
  Matrix<double> x(1, 2);
  x << 3, 4;  // rms = sqrt(12.5)
  RmsNorm<double>::Context ctx;
  const Matrix<double> y = norm.Forward(x, &ctx);
  EXPECT_NEAR(y(0, 0), 3 / std::sqrt(12.5), 1e-12);
  EXPECT_NEAR(y(0, 1), 4 / std::sqrt(12.5), 1e-12);
}

class RmsNormGradientTest : public ::testing::Test {
 protected:
  RmsNormGradientTest() { norm_.Params()[0]->value = RandomMatrix<double>(1, 6, 7); }
  RmsNorm<double> norm_{"g", 6, 1e-6};
  test_util::LayerCalls<RmsNorm<double>, Matrix<double>> calls_{
      [this](const Matrix<double>& x, RmsNorm<double>::Context* ctx) {
        return norm_.Forward(x, ctx);
      },
      [this](Matrix<double> dy, RmsNorm<double>::Context* ctx) {
        return norm_.BackwardInput(std::move(dy), ctx);
      }};
};

TEST_F(RmsNormGradientTest, MatchesFiniteDifferences) {
  test_util::ExpectLayerGradientsMatch(&norm_, calls_, RandomMatrix<double>(4, 6, 8));
}

TEST_F(RmsNormGradientTest, DeferredBackwardWeightIsExact) {
  test_util::ExpectDeferredBackwardWeightExact(&norm_, calls_, RandomMatrix<double>(4, 6, 8),
                                               RandomMatrix<double>(3, 6, 10));
}

}  // namespace
}  // namespace model
