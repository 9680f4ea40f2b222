#include "model/moe.h"

#include <string>

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

MoeConfig TestConfig(int shared) {
  MoeConfig moe;
  moe.set_num_routed_experts(8);
  moe.set_num_shared_experts(shared);
  moe.set_top_k(3);
  moe.set_num_groups(4);
  moe.set_topk_groups(2);
  moe.set_route_scale(2.5);
  moe.set_gate_bias(true);  // V3's gate (the reference has the bias only at width 7168)
  moe.set_expert_intermediate_size(4);
  return moe;
}

// The block's output, computed token by token straight from the definition.
Matrix<double> Reference(const MoeGate<double>& gate, const std::vector<Mlp<double>>& experts,
                         const Mlp<double>& shared, const Matrix<double>& x) {
  Matrix<double> y(x.rows(), x.cols());
  for (int64_t t = 0; t < x.rows(); ++t) {
    const Matrix<double> xt = x.row(t);
    typename MoeGate<double>::Context gate_ctx;
    const Routing<double> routing = gate.Forward(xt, {1}, &gate_ctx);
    typename Mlp<double>::Context ctx;
    y.row(t) = shared.Forward(xt, &ctx);
    for (int j = 0; j < routing.top_k; ++j) {
      y.row(t) += routing.weights(0, j) * experts[routing.experts[j]].Forward(xt, &ctx);
    }
  }
  return y;
}

TEST(MoeTest, ForwardMatchesPerTokenDefinition) {
  const MoeConfig config = TestConfig(1);
  Moe<double> moe("m.", 6, config);
  InitParams(moe.Params(), 0.5, 1);
  // The same weights in separate gate, shared and expert layers (Params() lists them in order).
  MoeGate<double> gate("m.gate.", 6, config);
  Mlp<double> shared("m.shared_experts.", 6, 4);
  std::vector<Mlp<double>> experts;
  for (int e = 0; e < 8; ++e) experts.emplace_back("e.", 6, 4);
  std::vector<Param<double>*> copies = gate.Params();
  for (Param<double>* p : shared.Params()) copies.push_back(p);
  for (Mlp<double>& expert : experts) {
    for (Param<double>* p : expert.Params()) copies.push_back(p);
  }
  const std::vector<Param<double>*> params = moe.Params();
  ASSERT_EQ(params.size(), copies.size());
  for (size_t i = 0; i < params.size(); ++i) copies[i]->value = params[i]->value;

  const Matrix<double> x = RandomMatrix<double>(7, 6, 2);
  Moe<double>::Context ctx;
  const Matrix<double> y = moe.Forward(x, {7}, &ctx);
  EXPECT_TRUE(y.isApprox(Reference(gate, experts, shared, x), 1e-13));
  int64_t total = 0;
  for (int64_t load : ctx.loads) total += load;
  EXPECT_EQ(total, 7 * 3);
}

class MoeGradientTest : public ::testing::TestWithParam<int> {
 protected:
  MoeGradientTest() : moe_("m.", 6, TestConfig(GetParam())) {
    InitParams(moe_.Params(), 0.5, 1);
    moe_.Params()[1]->value = RandomMatrix<double>(1, 8, 5, 0.1);  // the gate's selection bias
  }
  Moe<double> moe_;
  test_util::LayerCalls<Moe<double>, Matrix<double>> calls_{
      [this](const Matrix<double>& x, Moe<double>::Context* ctx) {
        return moe_.Forward(x, {x.rows()}, ctx);
      },
      [this](Matrix<double> dy, Moe<double>::Context* ctx) {
        return moe_.BackwardInput(std::move(dy), ctx);
      }};
};

TEST_P(MoeGradientTest, MatchesFiniteDifferences) {
  test_util::ExpectLayerGradientsMatch(&moe_, calls_, RandomMatrix<double>(7, 6, 2));
}

TEST_P(MoeGradientTest, DeferredBackwardWeightIsExact) {
  test_util::ExpectDeferredBackwardWeightExact(&moe_, calls_, RandomMatrix<double>(7, 6, 2),
                                               RandomMatrix<double>(5, 6, 3));
}

// Without and with a shared expert.
INSTANTIATE_TEST_SUITE_P(SharedExperts, MoeGradientTest, ::testing::Values(0, 1));

// Expert parallelism over real ranks is tested in expert_exchange_test.cc.
TEST(MoeTest, RowsPerRankSumsEachRanksExperts) {
  EXPECT_EQ(RowsPerRank({1, 2, 3, 4, 5, 6}, 3), (std::vector<int64_t>{3, 7, 11}));
}

}  // namespace
}  // namespace model
