#include "model/cuda/elementwise_kernels.h"

#include "gtest/gtest.h"
#include "model/cuda/internal/test_util.h"
#include "model/init.h"
#include "model/mlp.h"
#include "model/rms_norm.h"
#include "model/rope.h"

namespace model::cuda {
namespace {

using test_util::DeviceTensor;
using test_util::ToDeviceTensor;
using test_util::ToHostMatrix;

constexpr int64_t kTokens = 37;
constexpr int64_t kWidth = 300;  // more than one block of threads per row

TEST(ElementwiseKernelsTest, RmsNormMatchesCpu) {
  RmsNorm<float> norm("g", kWidth, 1e-6);
  Param<float>* g = norm.Params()[0];
  g->value = RandomMatrix<float>(1, kWidth, 1);
  const Matrix<float> x = RandomMatrix<float>(kTokens, kWidth, 2);
  const Matrix<float> dy = RandomMatrix<float>(kTokens, kWidth, 3);
  RmsNorm<float>::Context ctx;
  const Matrix<float> y_cpu = norm.Forward(x, &ctx);
  const Matrix<float> dx_cpu = norm.BackwardInput(dy, &ctx);
  norm.BackwardWeight(&ctx);

  const core::Tensor d_x = ToDeviceTensor(x), d_g = ToDeviceTensor(g->value, true);
  const core::Tensor d_dy = ToDeviceTensor(dy);
  core::Tensor d_y = DeviceTensor({kTokens, kWidth}), d_r = DeviceTensor({kTokens});
  core::Tensor d_dx = DeviceTensor({kTokens, kWidth});
  const core::Tensor d_dg = ToDeviceTensor(Matrix<float>::Zero(1, kWidth), true);
  ASSERT_TRUE(RmsNormForward(d_x.view(), d_g.view(), 1e-6f, d_y.view(), d_r.view()).ok());
  ASSERT_TRUE(
      RmsNormBackwardInput(d_x.view(), d_g.view(), d_r.view(), d_dy.view(), d_dx.view()).ok());
  ASSERT_TRUE(RmsNormBackwardWeight(d_x.view(), d_r.view(), d_dy.view(), d_dg.view()).ok());
  EXPECT_TRUE(ToHostMatrix(d_y.view(), kTokens, kWidth).isApprox(y_cpu, 1e-5f));
  EXPECT_TRUE(ToHostMatrix(d_dx.view(), kTokens, kWidth).isApprox(dx_cpu, 1e-5f));
  EXPECT_TRUE(ToHostMatrix(d_dg.view(), 1, kWidth).isApprox(g->grad, 1e-5f));
}

TEST(ElementwiseKernelsTest, RmsNormRejectsAHostTensor) {
  const Matrix<float> x = RandomMatrix<float>(2, 4, 1);
  const core::TensorView host(const_cast<float*>(x.data()), core::DType::kF32, {2, 4});
  core::Tensor g = DeviceTensor({4}), y = DeviceTensor({2, 4}), r = DeviceTensor({2});
  EXPECT_EQ(RmsNormForward(host, g.view(), 1e-6f, y.view(), r.view()).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ElementwiseKernelsTest, RopeMatchesCpuBothWays) {
  constexpr int64_t kHeads = 3, kHeadDim = 8, kSeqLen = 6;
  const Matrix<float> x = RandomMatrix<float>(4 * kSeqLen, kHeads * kHeadDim, 4);
  for (bool inverse : {false, true}) {
    Matrix<float> expected = x;
    ApplyRope(&expected, kHeads, kHeadDim, kSeqLen, 10000.0, inverse);
    const core::Tensor d_x = ToDeviceTensor(x);
    ASSERT_TRUE(Rope(d_x.view(), kHeads, kHeadDim, kSeqLen, 10000.0, inverse).ok());
    EXPECT_TRUE(ToHostMatrix(d_x.view(), x.rows(), x.cols()).isApprox(expected, 1e-6f))
        << "inverse " << inverse;
  }
}

TEST(ElementwiseKernelsTest, SwiGluMatchesTheCpuMlp) {
  // An Mlp of hidden 2W and width W with gate_proj = [I 0], up_proj = [0 I] and down_proj = I
  // maps x = [gate | up] to silu(gate) * up, and its input gradient is [d_gate | d_up].
  Mlp<float> mlp("m.", 2 * kWidth, kWidth);
  std::vector<Param<float>*> params = mlp.Params();  // gate, up, down
  params[0]->value.setZero();
  params[0]->value.leftCols(kWidth).setIdentity();
  params[1]->value.setZero();
  params[1]->value.rightCols(kWidth).setIdentity();
  params[2]->value.setIdentity();
  Matrix<float> x(kTokens, 2 * kWidth);
  x << RandomMatrix<float>(kTokens, kWidth, 5, 4.0), RandomMatrix<float>(kTokens, kWidth, 6);
  const Matrix<float> dh = RandomMatrix<float>(kTokens, kWidth, 7);
  Mlp<float>::Context ctx;
  const Matrix<float> h = mlp.Forward(x, &ctx);
  const Matrix<float> dx = mlp.BackwardInput(dh, &ctx);

  const core::Tensor g = ToDeviceTensor(x.leftCols(kWidth));
  const core::Tensor u = ToDeviceTensor(x.rightCols(kWidth));
  const core::Tensor dhd = ToDeviceTensor(dh);
  core::Tensor hd = DeviceTensor({kTokens, kWidth}), dg = DeviceTensor({kTokens, kWidth});
  core::Tensor du = DeviceTensor({kTokens, kWidth});
  ASSERT_TRUE(SwiGluForward(g.view(), u.view(), hd.view()).ok());
  ASSERT_TRUE(SwiGluBackward(g.view(), u.view(), dhd.view(), dg.view(), du.view()).ok());
  EXPECT_TRUE(ToHostMatrix(hd.view(), kTokens, kWidth).isApprox(h, 1e-5f));
  EXPECT_TRUE(ToHostMatrix(dg.view(), kTokens, kWidth).isApprox(dx.leftCols(kWidth), 1e-5f));
  EXPECT_TRUE(ToHostMatrix(du.view(), kTokens, kWidth).isApprox(dx.rightCols(kWidth), 1e-5f));
}

}  // namespace
}  // namespace model::cuda
