#include "model/cuda/attention_kernels.h"

#include "gtest/gtest.h"
#include "model/attention.h"
#include "model/cuda/internal/test_util.h"
#include "model/init.h"
#include "model/rope.h"

namespace model::cuda {
namespace {

using test_util::DeviceTensor;
using test_util::ToDeviceTensor;
using test_util::ToHostMatrix;

constexpr int64_t kHeads = 3;
constexpr int64_t kHeadDim = 16;
constexpr int64_t kWidth = kHeads * kHeadDim;
constexpr int64_t kSeqLen = 150;  // more keys than threads per block
constexpr int64_t kTokens = 2 * kSeqLen;
constexpr double kTheta = 10000.0;

// The CPU Attention with hidden 3W: Wq = [I 0 0], Wk = [0 I 0], Wv = [0 0 I] and Wo = [I; 0; 0]
// exposes the attention core: x = [q | k | v] (before RoPE) -> y = [o | 0 | 0].
class AttentionKernelsTest : public ::testing::Test {
 protected:
  AttentionKernelsTest() : attention_("a.", 3 * kWidth, kHeads, kHeadDim, kTheta) {
    std::vector<Param<float>*> params = attention_.Params();  // q, k, v, o
    for (int i = 0; i < 4; ++i) params[i]->value.setZero();
    for (int i = 0; i < 3; ++i) params[i]->value.middleCols(i * kWidth, kWidth).setIdentity();
    params[3]->value.topRows(kWidth).setIdentity();
  }
  Attention<float> attention_;
};

TEST_F(AttentionKernelsTest, ForwardAndBackwardMatchCpu) {
  const Matrix<float> x = RandomMatrix<float>(kTokens, 3 * kWidth, 1);
  Matrix<float> dy = Matrix<float>::Zero(kTokens, 3 * kWidth);
  dy.leftCols(kWidth) = RandomMatrix<float>(kTokens, kWidth, 2);
  Attention<float>::Context ctx;
  const Matrix<float> y = attention_.Forward(x, kSeqLen, &ctx);
  const Matrix<float> dx = attention_.BackwardInput(dy, &ctx);

  Matrix<float> q = x.leftCols(kWidth), k = x.middleCols(kWidth, kWidth);
  ApplyRope(&q, kHeads, kHeadDim, kSeqLen, kTheta, false);
  ApplyRope(&k, kHeads, kHeadDim, kSeqLen, kTheta, false);
  const core::Tensor dq_in = ToDeviceTensor(q), dk_in = ToDeviceTensor(k);
  const core::Tensor dv_in = ToDeviceTensor(x.rightCols(kWidth));
  const core::Tensor d_do = ToDeviceTensor(dy.leftCols(kWidth));
  core::Tensor o = DeviceTensor({kTokens, kWidth}), lse = DeviceTensor({kTokens, kHeads});
  core::Tensor delta = DeviceTensor({kTokens, kHeads});
  core::Tensor dq = DeviceTensor({kTokens, kWidth}), dk = DeviceTensor({kTokens, kWidth});
  core::Tensor dv = DeviceTensor({kTokens, kWidth});
  const AttentionShape shape{kHeads, kHeadDim, kSeqLen};
  ASSERT_TRUE(
      AttentionForward(dq_in.view(), dk_in.view(), dv_in.view(), shape, o.view(), lse.view()).ok());
  ASSERT_TRUE(AttentionBackward(dq_in.view(), dk_in.view(), dv_in.view(), d_do.view(), lse.view(),
                                shape, delta.view(), dq.view(), dk.view(), dv.view())
                  .ok());
  EXPECT_TRUE(ToHostMatrix(o.view(), kTokens, kWidth).isApprox(y.leftCols(kWidth), 1e-5f));
  // The CPU gradients are with respect to q and k before RoPE: rotate the kernel's back.
  Matrix<float> dq_host = ToHostMatrix(dq.view(), kTokens, kWidth);
  Matrix<float> dk_host = ToHostMatrix(dk.view(), kTokens, kWidth);
  ApplyRope(&dq_host, kHeads, kHeadDim, kSeqLen, kTheta, true);
  ApplyRope(&dk_host, kHeads, kHeadDim, kSeqLen, kTheta, true);
  EXPECT_TRUE(dq_host.isApprox(dx.leftCols(kWidth), 1e-4f));
  EXPECT_TRUE(dk_host.isApprox(dx.middleCols(kWidth, kWidth), 1e-4f));
  EXPECT_TRUE(ToHostMatrix(dv.view(), kTokens, kWidth).isApprox(dx.rightCols(kWidth), 1e-4f));
}

TEST_F(AttentionKernelsTest, RejectsPartialSequences) {
  core::Tensor t = DeviceTensor({10, kWidth}), lse = DeviceTensor({10, kHeads});
  EXPECT_EQ(
      AttentionForward(t.view(), t.view(), t.view(), {kHeads, kHeadDim, 4}, t.view(), lse.view())
          .code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace model::cuda
