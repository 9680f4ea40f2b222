#include "dualpipe/transfers.h"

#include <vector>

#include "dualpipe/dualpipe_schedules.h"
#include "dualpipe/schedule.h"
#include "gtest/gtest.h"

namespace dualpipe {
namespace {

TEST(DeriveTransfersTest, LinksNeighbouringStagesAcrossRanks) {
  Schedule schedule;
  schedule.num_ranks = 2;
  schedule.routes = {Route{{{0, 0}, {1, 0}}, 1}};
  schedule.ops = {{Op::Forward(0, 0), Op::BackwardInput(0, 0), Op::BackwardWeight(0, 0)},
                  {Op::Forward(0, 0), Op::Backward(0, 0)}};
  const std::vector<std::vector<OpTransfers>> t = DeriveTransfers(schedule);
  ASSERT_EQ(t.size(), 2u);
  ASSERT_EQ(t[0].size(), 3u);
  EXPECT_TRUE(t[0][0].receives.empty());
  EXPECT_EQ(t[0][0].sends, (std::vector<Transfer>{{ValueKind::kActivation, 1, 0, 0, 0}}));
  EXPECT_EQ(t[0][1].receives, (std::vector<Transfer>{{ValueKind::kGradient, 1, 0, 1, 0}}));
  EXPECT_TRUE(t[0][1].sends.empty());
  EXPECT_TRUE(t[0][2].receives.empty() && t[0][2].sends.empty());
  EXPECT_EQ(t[1][0].receives, (std::vector<Transfer>{{ValueKind::kActivation, 0, 0, 0, 0}}));
  EXPECT_TRUE(t[1][0].sends.empty());
  EXPECT_EQ(t[1][1].sends, (std::vector<Transfer>{{ValueKind::kGradient, 0, 0, 1, 0}}));
}

TEST(DeriveTransfersTest, DualPipeVTurnsOnTheLastRankWithoutTransfers) {
  absl::StatusOr<Schedule> schedule = GenerateDualPipeV(2, 4);
  ASSERT_TRUE(schedule.ok());
  const std::vector<std::vector<OpTransfers>> t = DeriveTransfers(*schedule);
  // Rank 1 runs F0.0 (stage 1) then F1.0 (stage 2): the activation stays on rank 1.
  ASSERT_EQ(schedule->ops[1][0], Op::Forward(0, 0));
  ASSERT_EQ(schedule->ops[1][1], Op::Forward(1, 0));
  EXPECT_TRUE(t[1][0].sends.empty());
  EXPECT_TRUE(t[1][1].receives.empty());
  EXPECT_EQ(t[1][1].sends, (std::vector<Transfer>{{ValueKind::kActivation, 0, 0, 2, 0}}));
}

TEST(DeriveTransfersTest, OverlappedPairReceivesAndSendsForBothParts) {
  absl::StatusOr<Schedule> schedule = GenerateDualPipe(4, 8);
  ASSERT_TRUE(schedule.ok());
  const std::vector<std::vector<OpTransfers>> t = DeriveTransfers(*schedule);
  // Rank 0, op 7 is F0.3+B1.1: path 0's first stage (nothing to receive) and path 1's last stage
  // (its loss is local); it sends the activation on and the input gradient back.
  ASSERT_EQ(schedule->ops[0][7], Op::ForwardBackward(0, 3, 1, 1));
  EXPECT_TRUE(t[0][7].receives.empty());
  EXPECT_EQ(t[0][7].sends, (std::vector<Transfer>{{ValueKind::kActivation, 1, 0, 0, 3},
                                                  {ValueKind::kGradient, 1, 1, 3, 1}}));
  // Rank 1, op 6 is F1.2+B0.0: receives both inputs, sends both outputs.
  ASSERT_EQ(schedule->ops[1][6], Op::ForwardBackward(1, 2, 0, 0));
  EXPECT_EQ(t[1][6].receives, (std::vector<Transfer>{{ValueKind::kActivation, 2, 1, 1, 2},
                                                     {ValueKind::kGradient, 2, 0, 2, 0}}));
  EXPECT_EQ(t[1][6].sends, (std::vector<Transfer>{{ValueKind::kActivation, 0, 1, 2, 2},
                                                  {ValueKind::kGradient, 0, 0, 1, 0}}));
}

}  // namespace
}  // namespace dualpipe
