#include "dualpipe/baseline_schedules.h"

#include <algorithm>
#include <vector>

#include "dualpipe/schedule.h"
#include "gtest/gtest.h"

namespace dualpipe {
namespace {

TEST(OneFOneBTest, RankZeroWarmsUpWithRanksMinusOneForwards) {
  absl::StatusOr<Schedule> schedule = Generate1F1B(4, 8);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_EQ(schedule->ops[0][3], Op::Forward(0, 3));
  EXPECT_EQ(schedule->ops[0][4], Op::Backward(0, 0));
  EXPECT_EQ(schedule->ops[3][1], Op::Backward(0, 0));
}

TEST(ZB1PTest, RankHoldsBackAsManyWeightGradientsAsItsIndex) {
  absl::StatusOr<Schedule> schedule = GenerateZB1P(4, 8);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  for (int rank = 0; rank < 4; ++rank) {
    int pending = 0;
    int most_pending = 0;
    for (const Op& op : schedule->ops[rank]) {
      if (op.kind == OpKind::kBackwardInput) most_pending = std::max(most_pending, ++pending);
      if (op.kind == OpKind::kBackwardWeight) --pending;
      EXPECT_NE(op.kind, OpKind::kBackward);
    }
    EXPECT_EQ(pending, 0);
    EXPECT_EQ(most_pending, rank + 1) << "rank " << rank;
  }
}

TEST(BaselineTest, RejectsBadShapes) {
  EXPECT_EQ(Generate1F1B(0, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Generate1F1B(4, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateZB1P(-1, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateZB1P(4, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateInterleaved1F1B(4, 6, 2).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateInterleaved1F1B(4, 8, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateInterleaved1F1B(0, 8, 2).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Interleaved1F1BTest, RouteVisitsEveryRankOncePerChunk) {
  absl::StatusOr<Schedule> schedule = GenerateInterleaved1F1B(2, 4, 3);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  ASSERT_EQ(schedule->routes.size(), 1u);
  const std::vector<Hop> expected = {{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}, {1, 2}};
  EXPECT_EQ(schedule->routes[0].hops, expected);
  EXPECT_EQ(schedule->StageOf(1, 2), 5);
}

}  // namespace
}  // namespace dualpipe
