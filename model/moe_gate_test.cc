#include "model/moe_gate.h"

#include <cmath>

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

// 8 experts in 4 groups of 2; 2 groups kept, top-2 experts, route scale 2.5.
MoeConfig TestConfig() {
  MoeConfig moe;
  moe.set_num_routed_experts(8);
  moe.set_top_k(2);
  moe.set_num_groups(4);
  moe.set_topk_groups(2);
  moe.set_route_scale(2.5);
  moe.set_gate_bias(true);  // V3's gate (the reference has the bias only at width 7168)
  moe.set_expert_intermediate_size(4);
  moe.set_bias_update_speed(0.25f);
  return moe;
}

// A gate whose weight is the identity, and one token whose sigmoid scores are `scores`.
struct IdentityGate {
  explicit IdentityGate(const std::vector<double>& scores) : gate("g.", 8, TestConfig()), x(1, 8) {
    gate.Params()[0]->value = Matrix<double>::Identity(8, 8);
    for (int e = 0; e < 8; ++e) x(0, e) = std::log(scores[e] / (1 - scores[e]));
  }
  MoeGate<double> gate;
  Matrix<double> x;
};

const std::vector<double> kScores = {0.9, 0.1, 0.6, 0.55, 0.8, 0.05, 0.3, 0.3};

TEST(MoeGateTest, KeepsTheBestGroupsThenTheBestExperts) {
  // Group scores (sum of each pair): 1.0, 1.15, 0.85, 0.6 -> groups 1 and 0 are kept, so expert 4
  // (0.8, in group 2) loses to expert 2 (0.6) although plain top-2 would take it.
  IdentityGate g(kScores);
  MoeGate<double>::Context ctx;
  const Routing<double> routing = g.gate.Forward(g.x, {1}, &ctx);
  ASSERT_EQ(routing.experts, (std::vector<int32_t>{0, 2}));
  EXPECT_NEAR(routing.weights(0, 0), 0.9 / 1.5 * 2.5, 1e-12);
  EXPECT_NEAR(routing.weights(0, 1), 0.6 / 1.5 * 2.5, 1e-12);
}

TEST(MoeGateTest, BiasSteersSelectionButNotWeights) {
  IdentityGate g(kScores);
  g.gate.Params()[1]->value(0, 5) = 1.0;  // biased score of expert 5: 1.05; group 2: 1.85
  MoeGate<double>::Context ctx;
  const Routing<double> routing = g.gate.Forward(g.x, {1}, &ctx);
  ASSERT_EQ(routing.experts, (std::vector<int32_t>{5, 4}));
  EXPECT_NEAR(routing.weights(0, 0), 0.05 / 0.85 * 2.5, 1e-12);
  EXPECT_NEAR(routing.weights(0, 1), 0.8 / 0.85 * 2.5, 1e-12);
}

TEST(MoeGateTest, SequenceBalanceLossFollowsTheDefinition) {
  // One token choosing {0, 2}: f = 8 / (2 * 1) = 4 for both; P_i = s_i / 3.6.
  MoeConfig config = TestConfig();
  config.set_sequence_aux_loss_alpha(0.1f);
  MoeGate<double> gate("g.", 8, config);
  gate.Params()[0]->value = Matrix<double>::Identity(8, 8);
  const IdentityGate g(kScores);
  MoeGate<double>::Context ctx;
  const float alpha = config.sequence_aux_loss_alpha();
  EXPECT_NEAR(gate.Forward(g.x, {1}, &ctx).aux_loss, alpha * 4 * (0.9 + 0.6) / 3.6, 1e-12);
}

// Checks the gradients of x and the weight for the loss sum(weights * r) + 0.5 * balance loss over
// two sequences of 3 (the balance loss counting half), for a gate of width 6 with `config`.
void ExpectGateGradientsMatch(const MoeConfig& config) {
  MoeGate<double> gate("g.", 6, config);
  InitParams(gate.Params(), 0.5, 1);
  Matrix<double> x = RandomMatrix<double>(6, 6, 3);
  const Matrix<double> r = RandomMatrix<double>(6, 2, 4);
  const BatchInfo batch{3, 0.5};  // two sequences; the loss counts half
  const auto loss = [&] {
    MoeGate<double>::Context c;
    const Routing<double> routing = gate.Forward(x, batch, &c);
    return test_util::Dot(routing.weights, r) + 0.5 * routing.aux_loss;
  };
  MoeGate<double>::Context ctx;
  EXPECT_GT(gate.Forward(x, batch, &ctx).aux_loss, 0);
  const Matrix<double> dx = gate.BackwardInput(r, &ctx);
  gate.BackwardWeight(&ctx);
  test_util::ExpectGradientMatches(loss, &x, dx, "x");
  test_util::ExpectParamGradientsMatch(loss, gate.Params());
}

TEST(MoeGateTest, SequenceBalanceLossGradientMatchesFiniteDifferences) {
  MoeConfig config = TestConfig();
  config.set_sequence_aux_loss_alpha(0.3f);
  ExpectGateGradientsMatch(config);
}

TEST(MoeGateTest, UpdateBiasMovesTowardsTheMeanLoad) {
  IdentityGate g(kScores);
  g.gate.UpdateBias({3, 1, 2, 2, 0, 4, 2, 2});  // mean 2
  const Matrix<double>& bias = g.gate.Params()[1]->value;
  const std::vector<double> expected = {-0.25, 0.25, 0, 0, 0.25, -0.25, 0, 0};
  for (int e = 0; e < 8; ++e) EXPECT_EQ(bias(0, e), expected[e]) << e;
}

// DeepSeek-V2's gate: softmax scores, no bias.
MoeConfig SoftmaxConfig() {
  MoeConfig moe = TestConfig();
  moe.set_score_func("softmax");
  moe.set_gate_bias(false);
  moe.set_bias_update_speed(0);
  return moe;
}

TEST(MoeGateTest, SoftmaxGateRanksGroupsByTheirBestScoreAndKeepsRawWeights) {
  // Softmax scores p (x = log p with an identity weight). Best score per group: 0.3, 0.2, 0.25,
  // 0.02 -> groups 0 and 2 (the sum of each group's top-2 would keep groups 1 and 0 instead);
  // experts 0 and 4, with weights p * 2.5, not renormalised.
  const std::vector<double> p = {0.3, 0.02, 0.2, 0.18, 0.25, 0.01, 0.02, 0.02};
  MoeGate<double> gate("g.", 8, SoftmaxConfig());
  ASSERT_FALSE(gate.has_bias());
  ASSERT_EQ(gate.Params().size(), 1u);  // no e_score_correction_bias
  gate.Params()[0]->value = Matrix<double>::Identity(8, 8);
  Matrix<double> x(1, 8);
  for (int e = 0; e < 8; ++e) x(0, e) = std::log(p[e]) + 0.5;  // softmax ignores the shift
  MoeGate<double>::Context ctx;
  const Routing<double> routing = gate.Forward(x, {1}, &ctx);
  ASSERT_EQ(routing.experts, (std::vector<int32_t>{0, 4}));
  EXPECT_NEAR(routing.weights(0, 0), 0.3 * 2.5, 1e-12);
  EXPECT_NEAR(routing.weights(0, 1), 0.25 * 2.5, 1e-12);
}

TEST(MoeGateTest, SigmoidGateWithoutBiasRanksGroupsByTheirBestScore) {
  // kScores' best score per group: 0.9, 0.6, 0.8, 0.3 -> groups 0 and 2 (with the bias rule, the
  // sums 1.0, 1.15, 0.85, 0.6 keep 1 and 0): experts 0 and 4, normalised.
  MoeConfig config = TestConfig();
  config.set_gate_bias(false);
  config.set_bias_update_speed(0);
  MoeGate<double> gate("g.", 8, config);
  gate.Params()[0]->value = Matrix<double>::Identity(8, 8);
  const IdentityGate g(kScores);
  MoeGate<double>::Context ctx;
  const Routing<double> routing = gate.Forward(g.x, {1}, &ctx);
  ASSERT_EQ(routing.experts, (std::vector<int32_t>{0, 4}));
  EXPECT_NEAR(routing.weights(0, 0), 0.9 / 1.7 * 2.5, 1e-12);
  gate.UpdateBias({3, 1, 2, 2, 0, 4, 2, 2});  // no bias: nothing to move
  EXPECT_EQ(gate.Params().size(), 1u);
}

TEST(MoeGateTest, SoftmaxGateGradientMatchesFiniteDifferences) {
  MoeConfig config = SoftmaxConfig();
  config.set_sequence_aux_loss_alpha(0.3);
  ExpectGateGradientsMatch(config);
}

TEST(MoeGateTest, ExpertLoadsCountsChoices) {
  EXPECT_EQ(ExpertLoads({0, 2, 2, 3}, 4), (std::vector<int64_t>{1, 0, 2, 1}));
}

class MoeGateGradientTest : public ::testing::Test {
 protected:
  MoeGateGradientTest() {
    InitParams(gate_.Params(), 0.5, 1);
    gate_.Params()[1]->value = RandomMatrix<double>(1, 8, 2, 0.1);
  }
  MoeGate<double> gate_{"g.", 6, TestConfig()};
  test_util::LayerCalls<MoeGate<double>, Matrix<double>> calls_{
      [this](const Matrix<double>& x, MoeGate<double>::Context* ctx) {
        return gate_.Forward(x, {1}, ctx).weights;
      },
      [this](Matrix<double> d_weights, MoeGate<double>::Context* ctx) {
        return gate_.BackwardInput(d_weights, ctx);
      }};
};

TEST_F(MoeGateGradientTest, MatchesFiniteDifferences) {
  test_util::ExpectLayerGradientsMatch(&gate_, calls_, RandomMatrix<double>(5, 6, 3));
}

TEST_F(MoeGateGradientTest, DeferredBackwardWeightIsExact) {
  test_util::ExpectDeferredBackwardWeightExact(&gate_, calls_, RandomMatrix<double>(5, 6, 3),
                                               RandomMatrix<double>(4, 6, 4));
}

}  // namespace
}  // namespace model
