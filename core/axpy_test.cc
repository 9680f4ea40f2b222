#include "core/axpy.h"

#include <vector>

#include "core/cuda_memory.h"
#include "gtest/gtest.h"

namespace core {
namespace {

TEST(CudaAxpy, MatchesScalarReference) {
  constexpr int kN = 100003;  // not a multiple of the block size
  std::vector<float> x(kN), y(kN), expected(kN);
  for (int i = 0; i < kN; ++i) {
    x[i] = static_cast<float>(i % 17) - 8.0f;
    y[i] = 0.25f * static_cast<float>(i % 5);
    expected[i] = 1.5f * x[i] + y[i];
  }
  absl::StatusOr<Tensor> dx = ToDevice(Tensor::FromVector({kN}, x).view());
  absl::StatusOr<Tensor> dy = ToDevice(Tensor::FromVector({kN}, y).view());
  ASSERT_TRUE(dx.ok() && dy.ok()) << dx.status() << dy.status();
  ASSERT_TRUE(CudaAxpy(1.5f, dx->view(), dy->view()).ok());
  absl::StatusOr<Tensor> result = ToHost(dy->view());
  ASSERT_TRUE(result.ok()) << result.status();
  for (int i = 0; i < kN; ++i) ASSERT_EQ(result->data<float>()[i], expected[i]) << i;
}

TEST(CudaAxpy, RejectsHostTensors) {
  Tensor x = Tensor::Zeros({4}, DType::kF32);
  EXPECT_EQ(CudaAxpy(1.0f, x.view(), x.view()).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace core
