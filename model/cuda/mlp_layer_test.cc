#include "model/cuda/mlp_layer.h"

#include "gtest/gtest.h"
#include "model/cuda/internal/test_util.h"
#include "model/init.h"

namespace model::cuda {
namespace {

using test_util::ToDeviceTensor;
using test_util::ToHostMatrix;

// Two micro-batches with W deferred (F0 F1 I0 I1 W0 W1), against the CPU Mlp run the same way.
TEST(MlpLayerTest, MatchesTheCpuMlp) {
  constexpr int64_t kHidden = 96, kInter = 160;
  Mlp<float> mlp("m.", kHidden, kInter);
  InitParams(mlp.Params(), 0.1, 1);
  absl::StatusOr<CublasHandle> handle = CublasHandle::Create();
  ASSERT_TRUE(handle.ok()) << handle.status();
  absl::StatusOr<MlpLayer> layer = MlpLayer::Create(mlp.Params(), &*handle);
  ASSERT_TRUE(layer.ok()) << layer.status();

  const Matrix<float> x[2] = {RandomMatrix<float>(70, kHidden, 2),
                              RandomMatrix<float>(33, kHidden, 3)};
  const Matrix<float> dy[2] = {RandomMatrix<float>(70, kHidden, 4),
                               RandomMatrix<float>(33, kHidden, 5)};
  Mlp<float>::Context cpu[2];
  MlpLayer::Context gpu[2];
  core::Tensor d_x[2], y[2], dx[2];
  for (int mb = 0; mb < 2; ++mb) {
    d_x[mb] = ToDeviceTensor(x[mb]);
    absl::StatusOr<core::Tensor> out = layer->Forward(d_x[mb].view(), &gpu[mb]);
    ASSERT_TRUE(out.ok()) << out.status();
    y[mb] = std::move(out).value();
    EXPECT_TRUE(ToHostMatrix(y[mb].view(), x[mb].rows(), kHidden)
                    .isApprox(mlp.Forward(x[mb], &cpu[mb]), 1e-5f));
  }
  for (int mb = 0; mb < 2; ++mb) {
    absl::StatusOr<core::Tensor> grad = layer->BackwardInput(ToDeviceTensor(dy[mb]), &gpu[mb]);
    ASSERT_TRUE(grad.ok()) << grad.status();
    EXPECT_TRUE(ToHostMatrix(grad->view(), x[mb].rows(), kHidden)
                    .isApprox(mlp.BackwardInput(dy[mb], &cpu[mb]), 1e-5f));
  }
  for (int mb = 0; mb < 2; ++mb) {
    ASSERT_TRUE(layer->BackwardWeight(&gpu[mb]).ok());
    mlp.BackwardWeight(&cpu[mb]);
  }
  const std::vector<Matrix<float>> expected = {mlp.Params()[0]->grad, mlp.Params()[1]->grad,
                                               mlp.Params()[2]->grad};
  ASSERT_TRUE(layer->CopyGradsTo(mlp.Params()).ok());
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(mlp.Params()[i]->grad.isApprox(expected[i], 1e-4f)) << mlp.Params()[i]->name;
  }
}

}  // namespace
}  // namespace model::cuda
