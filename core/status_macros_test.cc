#include "core/status_macros.h"

#include <string>

#include "gtest/gtest.h"

namespace core {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status CheckEven(int x) {
  RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

absl::StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int half, Half(x));
  ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status RecvLayer(int layer, int micro_batch, bool fail) {
  const absl::Status recv =
      fail ? absl::DeadlineExceededError("recv from rank 2 timed out after 5s") : absl::OkStatus();
  RETURN_IF_ERROR_WITH(recv, "layer ", layer, " attention, micro-batch ", micro_batch);
  return absl::OkStatus();
}

absl::StatusOr<int> QuarterWith(int x) {
  ASSIGN_OR_RETURN_WITH(int half, Half(x), "halving ", x);
  ASSIGN_OR_RETURN_WITH(int quarter, Half(half), "halving ", half);
  return quarter;
}

// Counts how often the context is built: it must be only on error.
int context_builds = 0;
std::string Context() {
  ++context_builds;
  return "context";
}

absl::Status CountContext(absl::Status status) {
  RETURN_IF_ERROR_WITH(status, Context());
  return absl::OkStatus();
}

TEST(StatusMacros, ReturnIfErrorPropagates) {
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).code(), absl::StatusCode::kInvalidArgument);
}

TEST(StatusMacros, AssignOrReturnAssignsOrPropagates) {
  ASSERT_TRUE(Quarter(8).ok());
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
}

TEST(Annotate, PrependsContextAndKeepsCodeAndPayloads) {
  absl::Status status = absl::UnavailableError("peer gone");
  status.SetPayload("type.example/rank", absl::Cord("3"));
  const absl::Status annotated = Annotate(status, "step 7");
  EXPECT_EQ(annotated.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(annotated.message(), "step 7: peer gone");
  ASSERT_TRUE(annotated.GetPayload("type.example/rank").has_value());
  EXPECT_EQ(std::string(*annotated.GetPayload("type.example/rank")), "3");
  // Annotations nest outermost first.
  EXPECT_EQ(Annotate(annotated, "train").message(), "train: step 7: peer gone");
}

TEST(Annotate, LeavesOkAndEmptyContextAlone) {
  EXPECT_TRUE(Annotate(absl::OkStatus(), "context").ok());
  const absl::Status status = absl::InternalError("x");
  EXPECT_EQ(Annotate(status, ""), status);
}

TEST(StatusMacros, ReturnIfErrorWithPrependsContext) {
  EXPECT_TRUE(RecvLayer(3, 5, /*fail=*/false).ok());
  const absl::Status status = RecvLayer(3, 5, /*fail=*/true);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(status.message(),
            "layer 3 attention, micro-batch 5: recv from rank 2 timed out after 5s");
}

TEST(StatusMacros, ReturnIfErrorWithBuildsContextOnlyOnError) {
  context_builds = 0;
  EXPECT_TRUE(CountContext(absl::OkStatus()).ok());
  EXPECT_EQ(context_builds, 0);
  EXPECT_EQ(CountContext(absl::AbortedError("a")).message(), "context: a");
  EXPECT_EQ(context_builds, 1);
}

TEST(StatusMacros, AssignOrReturnWithAssignsOrAnnotates) {
  ASSERT_TRUE(QuarterWith(8).ok());
  EXPECT_EQ(*QuarterWith(8), 2);
  EXPECT_EQ(QuarterWith(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuarterWith(6).status().message(), "halving 3: odd");
  EXPECT_EQ(QuarterWith(5).status().message(), "halving 5: odd");
}

}  // namespace
}  // namespace core
