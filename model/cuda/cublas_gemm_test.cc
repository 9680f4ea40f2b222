#include "model/cuda/cublas_gemm.h"

#include "gtest/gtest.h"
#include "model/cuda/internal/test_util.h"
#include "model/init.h"
#include "model/linear.h"

namespace model::cuda {
namespace {

using test_util::DeviceTensor;
using test_util::ToDeviceTensor;
using test_util::ToHostMatrix;

// The three products of a linear layer, each against the CPU Linear.
TEST(CublasGemmTest, LinearLayerProductsMatchCpu) {
  constexpr int64_t kTokens = 33, kIn = 70, kOut = 45;
  Linear<float> linear("w", kIn, kOut);
  InitParams(linear.Params(), 0.5, 1);
  const Matrix<float> x = RandomMatrix<float>(kTokens, kIn, 2);
  const Matrix<float> dy = RandomMatrix<float>(kTokens, kOut, 3);
  Linear<float>::Context ctx;
  const Matrix<float> y = linear.Forward(x, &ctx);
  const Matrix<float> dx = linear.BackwardInput(dy, &ctx);
  linear.BackwardWeight(&ctx);

  absl::StatusOr<CublasHandle> handle = CublasHandle::Create();
  ASSERT_TRUE(handle.ok()) << handle.status();
  const core::Tensor d_x = ToDeviceTensor(x), d_dy = ToDeviceTensor(dy);
  const core::Tensor d_w = ToDeviceTensor(linear.weight().value);
  core::Tensor d_y = DeviceTensor({kTokens, kOut}), d_dx = DeviceTensor({kTokens, kIn});
  const core::Tensor d_dw = ToDeviceTensor(Matrix<float>::Ones(kOut, kIn));
  ASSERT_TRUE(Gemm(*handle, d_x.view(), false, d_w.view(), true, 1, 0, d_y.view()).ok());
  ASSERT_TRUE(Gemm(*handle, d_dy.view(), false, d_w.view(), false, 1, 0, d_dx.view()).ok());
  ASSERT_TRUE(Gemm(*handle, d_dy.view(), true, d_x.view(), false, 1, 1, d_dw.view()).ok());
  EXPECT_TRUE(ToHostMatrix(d_y.view(), kTokens, kOut).isApprox(y, 1e-5f));
  EXPECT_TRUE(ToHostMatrix(d_dx.view(), kTokens, kIn).isApprox(dx, 1e-5f));
  const Matrix<float> expected_dw = linear.weight().grad.array() + 1.0f;  // beta = 1 accumulates
  EXPECT_TRUE(ToHostMatrix(d_dw.view(), kOut, kIn).isApprox(expected_dw, 1e-5f));
}

TEST(CublasGemmTest, RejectsMismatchedShapes) {
  absl::StatusOr<CublasHandle> handle = CublasHandle::Create();
  ASSERT_TRUE(handle.ok()) << handle.status();
  core::Tensor a = DeviceTensor({2, 3}), b = DeviceTensor({4, 5}), c = DeviceTensor({2, 5});
  EXPECT_EQ(Gemm(*handle, a.view(), false, b.view(), false, 1, 0, c.view()).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace model::cuda
