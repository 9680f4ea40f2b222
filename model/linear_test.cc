#include "model/linear.h"

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

TEST(LinearTest, ForwardIsXTimesWeightTransposed) {
  Linear<float> linear("w", 2, 3);
  linear.weight().value << 1, 2, 3, 4, 5, 6;
  Matrix<float> x(1, 2);
  x << 1, -1;
  Linear<float>::Context ctx;
  const Matrix<float> y = linear.Forward(x, &ctx);
  ASSERT_EQ(y.cols(), 3);
  EXPECT_EQ(y(0, 0), -1);
  EXPECT_EQ(y(0, 1), -1);
  EXPECT_EQ(y(0, 2), -1);
}

class LinearGradientTest : public ::testing::Test {
 protected:
  LinearGradientTest() { InitParams(linear_.Params(), 0.5, 1); }
  Linear<double> linear_{"w", 5, 4};
  test_util::LayerCalls<Linear<double>, Matrix<double>> calls_{
      [this](const Matrix<double>& x, Linear<double>::Context* ctx) {
        return linear_.Forward(x, ctx);
      },
      [this](Matrix<double> dy, Linear<double>::Context* ctx) {
        return linear_.BackwardInput(std::move(dy), ctx);
      }};
};

TEST_F(LinearGradientTest, MatchesFiniteDifferences) {
  test_util::ExpectLayerGradientsMatch(&linear_, calls_, RandomMatrix<double>(3, 5, 2));
}

TEST_F(LinearGradientTest, DeferredBackwardWeightIsExact) {
  test_util::ExpectDeferredBackwardWeightExact(&linear_, calls_, RandomMatrix<double>(3, 5, 2),
                                               RandomMatrix<double>(2, 5, 4));
}

}  // namespace
}  // namespace model
