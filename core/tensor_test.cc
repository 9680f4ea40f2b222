#include "core/tensor.h"

#include <cstdint>
#include <utility>

#include "gtest/gtest.h"

namespace core {
namespace {

TEST(Shape, CountsElementsAndPrints) {
  EXPECT_EQ(Shape({2, 3, 4}).num_elements(), 24);
  EXPECT_EQ(Shape().num_elements(), 1);
  EXPECT_EQ(Shape({5, 0}).num_elements(), 0);
  EXPECT_EQ(Shape({2, 3}).ToString(), "[2, 3]");
  EXPECT_EQ(Shape({2, 3}).dim(-1), 3);
}

TEST(Tensor, ZerosIsHostAlignedAndZero) {
  Tensor t = Tensor::Zeros({3, 5}, DType::kI64);
  EXPECT_EQ(t.device(), Device::kHost);
  EXPECT_EQ(t.num_bytes(), 3u * 5u * 8u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.view().raw_data()) % kAlignment, 0u);
  for (int64_t i = 0; i < t.num_elements(); ++i) EXPECT_EQ(t.data<int64_t>()[i], 0);
}

TEST(Tensor, RowMajorIndexing) {
  Tensor t = Tensor::FromVector({2, 3}, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(t.at<float>({1, 0}), 3.0f);
  EXPECT_EQ(t.at<float>({0, 2}), 2.0f);
  t.at<float>({1, 2}) = 9.0f;
  EXPECT_EQ(t.data<float>()[5], 9.0f);
}

TEST(Tensor, MoveTransfersOwnershipAndCloneCopiesDeep) {
  Tensor a = Tensor::FromVector({2}, {1, 2});
  float* bytes = a.data<float>();
  Tensor b = std::move(a);
  EXPECT_EQ(b.data<float>(), bytes);
  EXPECT_EQ(a.num_elements(), 0);  // NOLINT(bugprone-use-after-move): the moved-from state is empty
  Tensor c = b.Clone();
  EXPECT_NE(c.data<float>(), b.data<float>());
  c.at<float>({0}) = 7;
  EXPECT_EQ(b.at<float>({0}), 1.0f);
}

TEST(TensorView, SliceAndReshapeShareBytes) {
  Tensor t = Tensor::FromVector({3, 2}, {0, 1, 2, 3, 4, 5});
  TensorView rows = t.view().Slice(1, 3);
  EXPECT_EQ(rows.shape(), Shape({2, 2}));
  EXPECT_EQ(rows.at<float>({0, 0}), 2.0f);
  TensorView flat = rows.Reshaped({4});
  EXPECT_EQ(flat.at<float>({3}), 5.0f);
}

TEST(TensorView, CopyHostCopiesBytes) {
  Tensor src = Tensor::FromVector({2, 2}, {1, 2, 3, 4});
  Tensor dst = Tensor::Zeros({4}, DType::kF32);
  CopyHost(src.view(), dst.view());
  EXPECT_EQ(dst.at<float>({2}), 3.0f);
}

TEST(TensorDeathTest, WrongTypeAndOutOfBoundsAbort) {
  Tensor t = Tensor::Zeros({2, 2}, DType::kF32);
  EXPECT_DEATH(t.data<int32_t>(), "accessed a f32 tensor as i32");
  EXPECT_DEATH(t.at<float>({2, 0}), "out of");
  EXPECT_DEATH(t.view().Reshaped({3}), "reshape");
}

TEST(DType, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(ToFloat(ToBFloat16(1.0f)), 1.0f);
  EXPECT_EQ(ToFloat(ToBFloat16(-2.5f)), -2.5f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(ToFloat(ToBFloat16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(ToFloat(ToBFloat16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_EQ(SizeOf(DType::kBF16), 2u);
  EXPECT_EQ(Name(DType::kI64), "i64");
}

}  // namespace
}  // namespace core
