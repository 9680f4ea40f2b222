#include "model/mlp.h"

#include <cmath>

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

TEST(MlpTest, ForwardIsSwiGlu) {
  Mlp<double> mlp("m.", 1, 1);
  std::vector<Param<double>*> params = mlp.Params();  // gate, up, down
  params[0]->value(0, 0) = 2;
  params[1]->value(0, 0) = 3;
  params[2]->value(0, 0) = 0.5;
  Matrix<double> x(1, 1);
  x << 1;
  Mlp<double>::Context ctx;
  const double silu2 = 2 / (1 + std::exp(-2.0));
  EXPECT_NEAR(mlp.Forward(x, &ctx)(0, 0), silu2 * 3 * 0.5, 1e-15);
}

class MlpGradientTest : public ::testing::Test {
 protected:
  MlpGradientTest() { InitParams(mlp_.Params(), 0.5, 1); }
  Mlp<double> mlp_{"m.", 5, 7};
  test_util::LayerCalls<Mlp<double>, Matrix<double>> calls_{
      [this](const Matrix<double>& x, Mlp<double>::Context* ctx) { return mlp_.Forward(x, ctx); },
      [this](Matrix<double> dy, Mlp<double>::Context* ctx) {
        return mlp_.BackwardInput(std::move(dy), ctx);
      }};
};

TEST_F(MlpGradientTest, MatchesFiniteDifferences) {
  test_util::ExpectLayerGradientsMatch(&mlp_, calls_, RandomMatrix<double>(3, 5, 2));
}

TEST_F(MlpGradientTest, DeferredBackwardWeightIsExact) {
  test_util::ExpectDeferredBackwardWeightExact(&mlp_, calls_, RandomMatrix<double>(3, 5, 2),
                                               RandomMatrix<double>(4, 5, 4));
}

}  // namespace
}  // namespace model
