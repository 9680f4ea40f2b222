#include "comm/internal/call.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace comm::internal {
namespace {

const ConstBuffer kFourFloats(nullptr, 4, core::DType::kF32, core::Device::kHost);

TEST(CallTest, DescribesEachKind) {
  EXPECT_EQ(Describe(Call::AllReduce(kFourFloats, ReduceOp::kMax)), "AllReduce(max, 4 x f32)");
  EXPECT_EQ(Describe(Call::AllGather(kFourFloats)), "AllGather(4 x f32)");
  EXPECT_EQ(Describe(Call::AllToAll(kFourFloats)), "AllToAll(f32)");
  EXPECT_EQ(Describe(Call::Broadcast(kFourFloats, 2)), "Broadcast(root 2, 4 x f32)");
  EXPECT_EQ(Describe(Call::Barrier()), "Barrier()");
  EXPECT_EQ(Describe(Call::Split()), "Split()");
}

TEST(CallTest, ComparesWhatRanksMustAgreeOn) {
  const Call sum = Call::AllReduce(kFourFloats, ReduceOp::kSum);
  EXPECT_TRUE(CompareCalls(std::vector<Call>{sum, sum, sum}).ok());
  // AllToAll's counts may differ between ranks; only its dtype is compared.
  const ConstBuffer two_floats(nullptr, 2, core::DType::kF32, core::Device::kHost);
  EXPECT_TRUE(
      CompareCalls(std::vector<Call>{Call::AllToAll(kFourFloats), Call::AllToAll(two_floats)})
          .ok());
  const absl::Status status =
      CompareCalls(std::vector<Call>{sum, sum, Call::Broadcast(kFourFloats, 0), Call::Barrier()});
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_EQ(status.message(),
            "mismatched collective calls: rank 0 called AllReduce(sum, 4 x f32), rank 2 called "
            "Broadcast(root 0, 4 x f32)");
}

TEST(CallTest, EncodedCallsCompareAsCallsDo) {
  const Call sum = Call::AllReduce(kFourFloats, ReduceOp::kSum);
  const Call max = Call::AllReduce(kFourFloats, ReduceOp::kMax);
  std::vector<int64_t> encoded;
  for (const Call& call : {sum, sum, max}) {
    for (int64_t value : Encode(call)) encoded.push_back(value);
  }
  EXPECT_EQ(CompareEncodedCalls(encoded), CompareCalls(std::vector<Call>{sum, sum, max}));
  EXPECT_TRUE(
      CompareEncodedCalls(std::vector<int64_t>(encoded.begin(), encoded.begin() + 10)).ok());
  encoded[5] = 99;  // rank 1's kind is no kind at all
  const absl::Status garbage = CompareEncodedCalls(encoded);
  EXPECT_TRUE(absl::IsInvalidArgument(garbage));
  EXPECT_NE(garbage.message().find("rank 1 called an unknown call (99 "), absl::string_view::npos)
      << garbage;
}

}  // namespace
}  // namespace comm::internal
