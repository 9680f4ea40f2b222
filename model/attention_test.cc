#include "model/attention.h"

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

constexpr int64_t kHidden = 6;
constexpr int64_t kHeads = 2;
constexpr int64_t kHeadDim = 4;

TEST(AttentionTest, IsCausal) {
  Attention<double> attention("a.", kHidden, kHeads, kHeadDim, 10000.0);
  InitParams(attention.Params(), 0.5, 1);
  Matrix<double> x = RandomMatrix<double>(4, kHidden, 2);
  Attention<double>::Context ctx;
  const Matrix<double> y = attention.Forward(x, 4, &ctx);
  x.row(3).setConstant(7.0);  // the last token must not change earlier outputs
  Attention<double>::Context ctx2;
  const Matrix<double> y2 = attention.Forward(x, 4, &ctx2);
  EXPECT_TRUE(y.topRows(3) == y2.topRows(3));
  EXPECT_FALSE(y.row(3) == y2.row(3));
}

TEST(AttentionTest, SequencesAreIndependent) {
  Attention<double> attention("a.", kHidden, kHeads, kHeadDim, 10000.0);
  InitParams(attention.Params(), 0.5, 1);
  const Matrix<double> x = RandomMatrix<double>(6, kHidden, 2);
  Attention<double>::Context ctx, ctx_tail;
  const Matrix<double> y = attention.Forward(x, 3, &ctx);
  const Matrix<double> tail = attention.Forward(x.bottomRows(3), 3, &ctx_tail);
  EXPECT_TRUE(y.bottomRows(3).isApprox(tail, 1e-14));
}

class AttentionGradientTest : public ::testing::Test {
 protected:
  AttentionGradientTest() { InitParams(attention_.Params(), 0.5, 1); }
  Attention<double> attention_{"a.", kHidden, kHeads, kHeadDim, 100.0};
  test_util::LayerCalls<Attention<double>, Matrix<double>> calls_{
      [this](const Matrix<double>& x, Attention<double>::Context* ctx) {
        return attention_.Forward(x, 3, ctx);
      },
      [this](Matrix<double> dy, Attention<double>::Context* ctx) {
        return attention_.BackwardInput(std::move(dy), ctx);
      }};
};

TEST_F(AttentionGradientTest, MatchesFiniteDifferences) {
  test_util::ExpectLayerGradientsMatch(&attention_, calls_, RandomMatrix<double>(6, kHidden, 2));
}

TEST_F(AttentionGradientTest, DeferredBackwardWeightIsExact) {
  test_util::ExpectDeferredBackwardWeightExact(&attention_, calls_,
                                               RandomMatrix<double>(6, kHidden, 2),
                                               RandomMatrix<double>(3, kHidden, 4));
}

}  // namespace
}  // namespace model
