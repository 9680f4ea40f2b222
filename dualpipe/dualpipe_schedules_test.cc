#include "dualpipe/dualpipe_schedules.h"

#include <string>
#include <vector>

#include "dualpipe/schedule.h"
#include "dualpipe/validator.h"
#include "gtest/gtest.h"

namespace dualpipe {
namespace {

TEST(DualPipeTest, RankZeroOfEightRanksBeginsLikeTheReadme) {
  absl::StatusOr<Schedule> schedule = GenerateDualPipe(8, 20);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  const std::string text = FormatSchedule(*schedule);
  EXPECT_EQ(text.rfind("rank 0: F0.0 F0.1 F0.2 F0.3 F0.4 F0.5 F0.6 F1.0 I1.0 W1.0 F1.1 I1.1 W1.1 "
                       "F1.2 I1.2 W1.2 F1.3 F0.7+B1.3 F1.4+B0.0 F0.8+B1.4",
                       0),
            0u);
}

TEST(DualPipeTest, MiddleRanksDoNotOverlapTheirFirstMainStep) {
  absl::StatusOr<Schedule> schedule = GenerateDualPipe(4, 8);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  // Rank 1 (middle): ... F0.2 B1.0 F1.2+B0.0 ...; rank 0 overlaps: F0.3+B1.1.
  const std::vector<Op>& rank1 = schedule->ops[1];
  EXPECT_EQ(rank1[4], Op::Forward(0, 2));
  EXPECT_EQ(rank1[5], Op::Backward(1, 0));
  EXPECT_EQ(rank1[6], Op::ForwardBackward(1, 2, 0, 0));
  EXPECT_EQ(schedule->ops[0][7], Op::ForwardBackward(0, 3, 1, 1));
}

TEST(DualPipeTest, EveryRankRunsEveryMicroBatchOfBothDirections) {
  absl::StatusOr<Schedule> schedule = GenerateDualPipe(6, 16);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_EQ(schedule->routes.size(), 2u);
  EXPECT_EQ(schedule->routes[0].num_microbatches, 8);
  EXPECT_EQ(schedule->routes[1].hops.front(), (Hop{5, 1}));
  EXPECT_TRUE(ValidateSchedule(*schedule).ok());
}

TEST(DualPipeTest, RejectsBadShapes) {
  EXPECT_EQ(GenerateDualPipe(7, 20).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateDualPipe(0, 20).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateDualPipe(8, 14).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateDualPipe(8, 21).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(GenerateDualPipe(8, 16).ok());
}

TEST(DualPipeVTest, RejectsBadShapes) {
  EXPECT_EQ(GenerateDualPipeV(0, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateDualPipeV(4, 7).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(GenerateDualPipeV(4, 8).ok());
}

TEST(DualPipeVTest, RouteIsAV) {
  absl::StatusOr<Schedule> schedule = GenerateDualPipeV(3, 6);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  ASSERT_EQ(schedule->routes.size(), 1u);
  const std::vector<Hop> expected = {{0, 0}, {1, 0}, {2, 0}, {2, 1}, {1, 1}, {0, 1}};
  EXPECT_EQ(schedule->routes[0].hops, expected);
}

}  // namespace
}  // namespace dualpipe
