#include "model/cuda/routing_kernels.h"

#include <algorithm>

#include "gtest/gtest.h"
#include "model/cuda/internal/test_util.h"
#include "model/init.h"
#include "model/moe_gate.h"
#include "model/token_permute.h"

namespace model::cuda {
namespace {

using test_util::DeviceTensor;
using test_util::ToDeviceTensor;
using test_util::ToHostInts;
using test_util::ToHostMatrix;

constexpr int64_t kTokens = 300;
constexpr int64_t kExperts = 64;
constexpr int64_t kTopK = 6;
constexpr int64_t kWidth = 40;

MoeConfig TestConfig() {
  MoeConfig moe;
  moe.set_num_routed_experts(kExperts);
  moe.set_top_k(kTopK);
  moe.set_num_groups(8);
  moe.set_topk_groups(3);
  moe.set_route_scale(2.5);
  moe.set_gate_bias(true);  // V3's gate (the reference has the bias only at width 7168)
  moe.set_expert_intermediate_size(1);
  return moe;
}

TEST(RoutingKernelsTest, RouteMatchesTheCpuGate) {
  // A CPU gate with an identity weight routes its input as logits.
  MoeGate<float> gate("g.", kExperts, TestConfig());
  gate.Params()[0]->value = Matrix<float>::Identity(kExperts, kExperts);
  gate.Params()[1]->value = RandomMatrix<float>(1, kExperts, 1, 0.2);
  const Matrix<float> logits = RandomMatrix<float>(kTokens, kExperts, 2, 3.0);
  MoeGate<float>::Context ctx;
  const Routing<float> expected = gate.Forward(logits, {1}, &ctx);

  const core::Tensor d_logits = ToDeviceTensor(logits);
  const core::Tensor d_bias = ToDeviceTensor(gate.Params()[1]->value, true);
  core::Tensor scores = DeviceTensor({kTokens, kExperts});
  core::Tensor experts = DeviceTensor({kTokens, kTopK}, core::DType::kI32);
  core::Tensor weights = DeviceTensor({kTokens, kTopK});
  const RouteOptions options{kTopK, 8, 3, 2.5f};
  ASSERT_TRUE(
      Route(d_logits.view(), d_bias.view(), options, scores.view(), experts.view(), weights.view())
          .ok());
  EXPECT_EQ(ToHostInts(experts.view()), expected.experts);
  EXPECT_TRUE(ToHostMatrix(weights.view(), kTokens, kTopK).isApprox(expected.weights, 1e-5f));
  EXPECT_TRUE(ToHostMatrix(scores.view(), kTokens, kExperts).isApprox(ctx.scores, 1e-6f));

  // With an identity gate weight, the CPU gate's input gradient is the logits' gradient.
  const Matrix<float> d_weights = RandomMatrix<float>(kTokens, kTopK, 8);
  const Matrix<float> d_logits_cpu = gate.BackwardInput(d_weights, &ctx);
  const core::Tensor d_dw = ToDeviceTensor(d_weights);
  core::Tensor d_grad = DeviceTensor({kTokens, kExperts});
  ASSERT_TRUE(RouteBackward(scores.view(), experts.view(), d_dw.view(), 2.5f, d_grad.view()).ok());
  EXPECT_TRUE(ToHostMatrix(d_grad.view(), kTokens, kExperts).isApprox(d_logits_cpu, 1e-5f));
}

TEST(RoutingKernelsTest, RouteRejectsTooManyGroups) {
  core::Tensor logits = DeviceTensor({2, 66}), bias = DeviceTensor({66});
  core::Tensor scores = DeviceTensor({2, 66}), weights = DeviceTensor({2, 2});
  core::Tensor experts = DeviceTensor({2, 2}, core::DType::kI32);
  EXPECT_EQ(Route(logits.view(), bias.view(), {2, 33, 1, 1.0f}, scores.view(), experts.view(),
                  weights.view())
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RoutingKernelsTest, PermuteAndCombineMatchCpu) {
  // Random routing of kTokens tokens to kTopK distinct experts each.
  Rng rng(3);
  std::vector<int32_t> chosen;
  for (int64_t t = 0; t < kTokens; ++t) {
    std::vector<int32_t> picked;
    while (static_cast<int64_t>(picked.size()) < kTopK) {
      const int32_t e = static_cast<int32_t>(rng.Next() % kExperts);
      if (std::find(picked.begin(), picked.end(), e) == picked.end()) picked.push_back(e);
    }
    chosen.insert(chosen.end(), picked.begin(), picked.end());
  }
  const DispatchPlan plan = PlanDispatch(chosen, kTopK, kExperts);
  std::vector<int32_t> slots(plan.slots.begin(), plan.slots.end());
  std::vector<int32_t> row_of_slot(slots.size());
  for (size_t r = 0; r < slots.size(); ++r) row_of_slot[slots[r]] = static_cast<int32_t>(r);
  const int64_t n = kTokens * kTopK;
  const Matrix<float> x = RandomMatrix<float>(kTokens, kWidth, 4);
  const Matrix<float> weights = RandomMatrix<float>(kTokens, kTopK, 5);
  const Matrix<float> rows_in = RandomMatrix<float>(n, kWidth, 6);
  const Matrix<float> dy = RandomMatrix<float>(kTokens, kWidth, 7);
  Matrix<float> d_rows_cpu, d_weights_cpu;
  model::CombineRowsBackward(dy, rows_in, weights, plan, &d_rows_cpu, &d_weights_cpu);

  const core::Tensor d_x = ToDeviceTensor(x), d_w = ToDeviceTensor(weights);
  const core::Tensor d_rows_in = ToDeviceTensor(rows_in), d_dy = ToDeviceTensor(dy);
  const core::Tensor d_slots = ToDeviceTensor(slots), d_inverse = ToDeviceTensor(row_of_slot);
  core::Tensor rows = DeviceTensor({n, kWidth}), out = DeviceTensor({kTokens, kWidth});
  core::Tensor unweighted = DeviceTensor({kTokens, kWidth});
  core::Tensor d_rows = DeviceTensor({n, kWidth}), d_weights = DeviceTensor({kTokens, kTopK});
  ASSERT_TRUE(PermuteRows(d_x.view(), d_slots.view(), kTopK, rows.view()).ok());
  ASSERT_TRUE(CombineRows(d_rows_in.view(), d_w.view(), d_inverse.view(), kTopK, out.view()).ok());
  ASSERT_TRUE(
      CombineRows(d_rows_in.view(), core::TensorView(), d_inverse.view(), kTopK, unweighted.view())
          .ok());
  ASSERT_TRUE(CombineRowsBackward(d_dy.view(), d_rows_in.view(), d_w.view(), d_inverse.view(),
                                  kTopK, d_rows.view(), d_weights.view())
                  .ok());
  EXPECT_TRUE(ToHostMatrix(rows.view(), n, kWidth) == model::PermuteRows(x, plan));
  EXPECT_TRUE(ToHostMatrix(out.view(), kTokens, kWidth)
                  .isApprox(model::CombineRows(rows_in, &weights, plan), 1e-5f));
  EXPECT_TRUE(ToHostMatrix(unweighted.view(), kTokens, kWidth)
                  .isApprox(model::CombineRows<float>(rows_in, nullptr, plan), 1e-5f));
  EXPECT_TRUE(ToHostMatrix(d_rows.view(), n, kWidth).isApprox(d_rows_cpu, 1e-6f));
  EXPECT_TRUE(ToHostMatrix(d_weights.view(), kTokens, kTopK).isApprox(d_weights_cpu, 1e-5f));
}

}  // namespace
}  // namespace model::cuda
