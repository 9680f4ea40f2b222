#include "model/cuda/moe_layer.h"

#include "gtest/gtest.h"
#include "model/cuda/internal/test_util.h"
#include "model/init.h"

namespace model::cuda {
namespace {

using test_util::ToDeviceTensor;
using test_util::ToHostMatrix;

TEST(MoeLayerTest, MatchesTheCpuMoe) {
  constexpr int64_t kTokens = 50, kHidden = 64;
  MoeConfig config;
  config.set_num_routed_experts(16);
  config.set_num_shared_experts(1);
  config.set_top_k(4);
  config.set_num_groups(4);
  config.set_topk_groups(2);
  config.set_route_scale(2.5);
  config.set_gate_bias(true);  // V3's gate (the reference has the bias only at width 7168)
  config.set_expert_intermediate_size(32);
  Moe<float> moe("m.", kHidden, config);
  InitParams(moe.Params(), 0.1, 1);
  moe.Params()[1]->value = RandomMatrix<float>(1, 16, 2, 0.05);  // the selection bias
  absl::StatusOr<CublasHandle> handle = CublasHandle::Create();
  ASSERT_TRUE(handle.ok()) << handle.status();
  absl::StatusOr<MoeLayer> layer = MoeLayer::Create(moe, config, &*handle);
  ASSERT_TRUE(layer.ok()) << layer.status();

  const Matrix<float> x = RandomMatrix<float>(kTokens, kHidden, 3);
  const Matrix<float> dy = RandomMatrix<float>(kTokens, kHidden, 4);
  Moe<float>::Context cpu;
  const Matrix<float> y = moe.Forward(x, {kTokens}, &cpu);
  const Matrix<float> dx = moe.BackwardInput(dy, &cpu);
  moe.BackwardWeight(&cpu);
  std::vector<Matrix<float>> expected;
  for (Param<float>* p : moe.Params()) expected.push_back(p->grad);

  const core::Tensor d_x = ToDeviceTensor(x);
  MoeLayer::Context ctx;
  absl::StatusOr<core::Tensor> d_y = layer->Forward(d_x.view(), &ctx);
  ASSERT_TRUE(d_y.ok()) << d_y.status();
  EXPECT_TRUE(ToHostMatrix(d_y->view(), kTokens, kHidden).isApprox(y, 1e-4f));
  absl::StatusOr<core::Tensor> d_dx = layer->BackwardInput(ToDeviceTensor(dy), &ctx);
  ASSERT_TRUE(d_dx.ok()) << d_dx.status();
  EXPECT_TRUE(ToHostMatrix(d_dx->view(), kTokens, kHidden).isApprox(dx, 1e-4f));
  ASSERT_TRUE(layer->BackwardWeight(&ctx).ok());
  ASSERT_TRUE(layer->CopyGradsTo(moe).ok());
  const std::vector<Param<float>*> params = moe.Params();
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i]->trainable()) continue;
    EXPECT_TRUE(params[i]->grad.isApprox(expected[i], 1e-3f)) << params[i]->name;
  }
}

}  // namespace
}  // namespace model::cuda
