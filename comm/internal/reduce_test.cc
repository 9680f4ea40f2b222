#include "comm/internal/reduce.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace comm::internal {
namespace {

TEST(ReduceTest, SumAndMaxOfIntegers) {
  std::vector<int64_t> in = {1, -5, int64_t{1} << 40};
  std::vector<int64_t> inout = {2, -7, int64_t{1} << 40};
  ReduceInto(ReduceOp::kSum, core::DType::kI64, in.data(), inout.data(), in.size());
  EXPECT_EQ(inout, (std::vector<int64_t>{3, -12, int64_t{1} << 41}));
  ReduceInto(ReduceOp::kMax, core::DType::kI64, in.data(), inout.data(), in.size());
  EXPECT_EQ(inout, (std::vector<int64_t>{3, -5, int64_t{1} << 41}));
  std::vector<int32_t> a = {4, 9}, b = {5, -9};
  ReduceInto(ReduceOp::kMax, core::DType::kI32, a.data(), b.data(), 2);
  EXPECT_EQ(b, (std::vector<int32_t>{5, 9}));
}

TEST(ReduceTest, FloatSum) {
  std::vector<float> a = {0.5f, -1.25f}, b = {0.25f, 3.0f};
  ReduceInto(ReduceOp::kSum, core::DType::kF32, a.data(), b.data(), 2);
  EXPECT_EQ(b, (std::vector<float>{0.75f, 1.75f}));
}

TEST(ReduceTest, BFloat16RoundsToNearestEven) {
  // 256 + 1 is not representable (spacing 2 above 256): it rounds to even, 256.
  std::vector<core::BFloat16> in = {core::ToBFloat16(1.0f), core::ToBFloat16(3.0f)};
  std::vector<core::BFloat16> inout = {core::ToBFloat16(256.0f), core::ToBFloat16(256.0f)};
  ReduceInto(ReduceOp::kSum, core::DType::kBF16, in.data(), inout.data(), 2);
  EXPECT_EQ(core::ToFloat(inout[0]), 256.0f);
  EXPECT_EQ(core::ToFloat(inout[1]), 260.0f);
  ReduceInto(ReduceOp::kMax, core::DType::kBF16, in.data(), inout.data(), 2);
  EXPECT_EQ(core::ToFloat(inout[1]), 260.0f);
}

}  // namespace
}  // namespace comm::internal
