#include "dualpipe/schedule.h"

#include <vector>

#include "gtest/gtest.h"

namespace dualpipe {
namespace {

TEST(FormatOpTest, FormatsEveryKind) {
  EXPECT_EQ(FormatOp(Op::Forward(0, 3)), "F0.3");
  EXPECT_EQ(FormatOp(Op::Backward(1, 0)), "B1.0");
  EXPECT_EQ(FormatOp(Op::BackwardInput(0, 12)), "I0.12");
  EXPECT_EQ(FormatOp(Op::BackwardWeight(1, 2)), "W1.2");
  EXPECT_EQ(FormatOp(Op::ForwardBackward(0, 7, 1, 3)), "F0.7+B1.3");
}

Schedule TwoRouteSchedule() {
  Schedule schedule;
  schedule.num_ranks = 2;
  schedule.routes = {Route{{{0, 0}, {1, 0}}, 3}, Route{{{1, 1}, {0, 1}}, 2}};
  schedule.ops = {{Op::Forward(0, 0), Op::Forward(1, 0)}, {Op::Forward(1, 1)}};
  return schedule;
}

TEST(ScheduleTest, MapsPathsToRoutesAndStages) {
  const Schedule schedule = TwoRouteSchedule();
  EXPECT_EQ(schedule.NumPaths(), 2);
  EXPECT_EQ(schedule.RouteOfPath(0), 0);
  EXPECT_EQ(schedule.RouteOfPath(1), 1);
  EXPECT_EQ(schedule.RouteOfPath(2), -1);
  EXPECT_EQ(schedule.StageOf(0, 0), 0);
  EXPECT_EQ(schedule.StageOf(1, 0), 1);
  EXPECT_EQ(schedule.StageOf(1, 1), 0);
  EXPECT_EQ(schedule.StageOf(0, 1), 1);
  EXPECT_EQ(schedule.StageOf(2, 0), -1);
  EXPECT_EQ(schedule.TotalMicrobatches(), 5);
}

TEST(ScheduleTest, VRouteGoesDownThenBackUp) {
  const Route v = VRoute(2, 5);
  EXPECT_EQ(v.num_microbatches, 5);
  EXPECT_EQ(v.hops, (std::vector<Hop>{{0, 0}, {1, 0}, {1, 1}, {0, 1}}));
}

TEST(ScheduleTest, FormatsOneLinePerRank) {
  EXPECT_EQ(FormatSchedule(TwoRouteSchedule()), "rank 0: F0.0 F1.0\nrank 1: F1.1\n");
}

}  // namespace
}  // namespace dualpipe
