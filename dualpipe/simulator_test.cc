#include "dualpipe/simulator.h"

#include <cmath>
#include <string>
#include <tuple>

#include "dualpipe/baseline_schedules.h"
#include "dualpipe/dualpipe_schedules.h"
#include "dualpipe/schedule.h"
#include "gtest/gtest.h"

namespace dualpipe {
namespace {

OpCosts Costs(double f, double b, double w, double fb = -1, double latency = 0) {
  OpCosts costs;
  costs.forward = f;
  costs.backward = b;
  costs.weight = w;
  costs.forward_backward = fb;
  costs.p2p_latency = latency;
  return costs;
}

// (ranks, micro-batches, F, B, W).
using Shape = std::tuple<int, int, double, double, double>;

class BaselineBubbleTest : public testing::TestWithParam<Shape> {};

TEST_P(BaselineBubbleTest, OneFOneBHasThePublishedBubbleOnEveryRank) {
  const auto [p, m, f, b, w] = GetParam();
  absl::StatusOr<Schedule> schedule = Generate1F1B(p, m);
  ASSERT_TRUE(schedule.ok());
  absl::StatusOr<Simulation> sim = Simulate(*schedule, Costs(f, b, w));
  ASSERT_TRUE(sim.ok()) << sim.status();
  EXPECT_DOUBLE_EQ(sim->makespan, (m + p - 1) * (f + b));
  for (int r = 0; r < p; ++r) {
    EXPECT_DOUBLE_EQ(sim->ranks[r].bubble, (p - 1) * (f + b)) << "rank " << r;
    EXPECT_DOUBLE_EQ(sim->ranks[r].busy, m * (f + b));
    EXPECT_EQ(sim->ranks[r].peak_activations, std::min(p - r, m));
    EXPECT_EQ(sim->ranks[r].parameter_copies, 1);
  }
}

TEST_P(BaselineBubbleTest, ZB1PHasThePublishedBubbleOnEveryRank) {
  const auto [p, m, f, b, w] = GetParam();
  absl::StatusOr<Schedule> schedule = GenerateZB1P(p, m);
  ASSERT_TRUE(schedule.ok());
  absl::StatusOr<Simulation> sim = Simulate(*schedule, Costs(f, b, w));
  ASSERT_TRUE(sim.ok()) << sim.status();
  for (int r = 0; r < p; ++r) {
    EXPECT_DOUBLE_EQ(sim->ranks[r].bubble, (p - 1) * (f + b - 2 * w)) << "rank " << r;
    EXPECT_EQ(sim->ranks[r].peak_activations, std::min(p - r, m));
  }
}

TEST(SimulatorTest, Interleaved1F1BBubbleIsOneFOneBsOverTheChunks) {
  // With per-chunk costs F and B every rank idles (PP-1)(F+B): 1F1B's bubble with whole-rank
  // stages (chunks * F, chunks * B) divided by the number of chunks.
  for (int chunks : {2, 3, 4}) {
    absl::StatusOr<Schedule> schedule = GenerateInterleaved1F1B(4, 12, chunks);
    ASSERT_TRUE(schedule.ok());
    absl::StatusOr<Simulation> sim = Simulate(*schedule, Costs(1, 2, 1));
    ASSERT_TRUE(sim.ok()) << sim.status();
    for (int r = 0; r < 4; ++r) {
      EXPECT_DOUBLE_EQ(sim->ranks[r].bubble, 3 * (1 + 2)) << "chunks " << chunks;
      EXPECT_EQ(sim->ranks[r].parameter_copies, chunks);
    }
    EXPECT_EQ(sim->ranks[0].peak_activations, 3 * 2 + (chunks - 1) * 4 + 1);
  }
}

// W at most F keeps ZB-H1's W's inside the bubbles they fill (the paper's setting).
INSTANTIATE_TEST_SUITE_P(Costs, BaselineBubbleTest,
                         testing::Values(Shape{4, 8, 1, 2, 1}, Shape{4, 8, 1, 3, 1},
                                         Shape{4, 12, 2, 3, 1}, Shape{8, 16, 1, 2, 0.5},
                                         Shape{6, 6, 1.5, 3, 1.5}, Shape{2, 5, 1, 2, 1}));

// DualPipe and DualPipeV against (PP/2-1)(F&B+B-3W), PP counting stages: the ranks for DualPipe,
// twice the devices for DualPipeV; micro-batches 2*m. The formula is exact when I = W = F and
// F&B = F + B (the published setting); docs/schedules.md shows other costs. (PP, m, F, B, W, F&B).
using DualShape = std::tuple<int, int, double, double, double, double>;

class DualPipeBubbleTest : public testing::TestWithParam<DualShape> {};

TEST_P(DualPipeBubbleTest, DualPipeMatchesTheFormula) {
  const auto [pp, m, f, b, w, fb] = GetParam();
  absl::StatusOr<Schedule> schedule = GenerateDualPipe(pp, 2 * m);
  ASSERT_TRUE(schedule.ok());
  absl::StatusOr<Simulation> sim = Simulate(*schedule, Costs(f, b, w, fb));
  ASSERT_TRUE(sim.ok()) << sim.status();
  for (int r = 0; r < pp; ++r) {
    EXPECT_DOUBLE_EQ(sim->ranks[r].bubble, (pp / 2 - 1) * (fb + b - 3 * w)) << "rank " << r;
    EXPECT_EQ(sim->ranks[r].peak_activations, pp + 1) << "rank " << r;
    EXPECT_EQ(sim->ranks[r].parameter_copies, 2);
  }
}

TEST_P(DualPipeBubbleTest, DualPipeVMatchesTheFormula) {
  const auto [pp, m, f, b, w, fb] = GetParam();
  absl::StatusOr<Schedule> schedule = GenerateDualPipeV(pp / 2, 2 * m);
  ASSERT_TRUE(schedule.ok());
  absl::StatusOr<Simulation> sim = Simulate(*schedule, Costs(f, b, w, fb));
  ASSERT_TRUE(sim.ok()) << sim.status();
  for (int r = 0; r < pp / 2; ++r) {
    EXPECT_DOUBLE_EQ(sim->ranks[r].bubble, (pp / 2 - 1) * (fb + b - 3 * w)) << "rank " << r;
    EXPECT_EQ(sim->ranks[r].peak_activations, pp + 1) << "rank " << r;
    EXPECT_EQ(sim->ranks[r].parameter_copies, 2);
  }
}

INSTANTIATE_TEST_SUITE_P(Costs, DualPipeBubbleTest,
                         testing::Values(DualShape{8, 10, 1, 2, 1, 3}, DualShape{4, 4, 1, 2, 1, 3},
                                         DualShape{6, 8, 1, 2, 1, 3}, DualShape{8, 12, 2, 4, 2, 6},
                                         DualShape{2, 3, 1, 2, 1, 3}));

TEST(SimulatorTest, LatencyDelaysCrossRankValuesOnly) {
  absl::StatusOr<Schedule> schedule = Generate1F1B(2, 1);
  ASSERT_TRUE(schedule.ok());
  absl::StatusOr<Simulation> sim = Simulate(*schedule, Costs(1, 2, 1, -1, 0.5));
  ASSERT_TRUE(sim.ok()) << sim.status();
  // F0 on rank 0 [0,1]; F0 on rank 1 [1.5,2.5]; B0 on rank 1 [2.5,4.5]; B0 on rank 0 [5,7].
  EXPECT_DOUBLE_EQ(sim->timeline[1][0].start, 1.5);
  EXPECT_DOUBLE_EQ(sim->timeline[1][1].start, 2.5);
  EXPECT_DOUBLE_EQ(sim->timeline[0][1].start, 5);
  EXPECT_DOUBLE_EQ(sim->makespan, 7);
  EXPECT_DOUBLE_EQ(sim->ranks[0].bubble, 4);
  EXPECT_DOUBLE_EQ(sim->total_bubble, 8);
}

TEST(SimulatorTest, OverlappedPairCostsForwardBackwardWhenGiven) {
  absl::StatusOr<Schedule> schedule = GenerateDualPipe(2, 4);
  ASSERT_TRUE(schedule.ok());
  absl::StatusOr<Simulation> fused = Simulate(*schedule, Costs(1, 2, 1, 2.5));
  absl::StatusOr<Simulation> serial = Simulate(*schedule, Costs(1, 2, 1, -1));
  ASSERT_TRUE(fused.ok() && serial.ok());
  EXPECT_LT(fused->makespan, serial->makespan);
  EXPECT_DOUBLE_EQ(OpCost(Op::ForwardBackward(0, 0, 1, 0), Costs(1, 2, 1)), 3);
  EXPECT_DOUBLE_EQ(OpCost(Op::BackwardInput(0, 0), Costs(1, 2, 0.5)), 1.5);
}

TEST(SimulatorTest, RejectsBadCostsAndIllegalSchedules) {
  absl::StatusOr<Schedule> schedule = Generate1F1B(2, 2);
  ASSERT_TRUE(schedule.ok());
  EXPECT_EQ(Simulate(*schedule, Costs(-1, 2, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Simulate(*schedule, Costs(1, 2, 3)).status().code(),
            absl::StatusCode::kInvalidArgument);
  schedule->ops[0].pop_back();
  EXPECT_EQ(Simulate(*schedule, Costs(1, 2, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SimulatorTest, RejectsCostsWhoseTimesWouldOverflow) {
  // Each cost is finite, but the step would last past DBL_MAX: the simulated times must not turn
  // into infinity (the dataflow's "not ready"), which reported a deadlock with no reason.
  absl::StatusOr<Schedule> schedule = GenerateDualPipe(4, 8);
  ASSERT_TRUE(schedule.ok());
  const absl::StatusOr<Simulation> huge = Simulate(*schedule, Costs(1e308, 1e308, 1e308));
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(huge.status().message().find("costs too large"), std::string::npos) << huge.status();
  // F&B as forward + backward overflows on its own.
  EXPECT_EQ(Simulate(*schedule, Costs(1.7e308, 1.7e308, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Large but summable costs simulate.
  const absl::StatusOr<Simulation> large = Simulate(*schedule, Costs(1e300, 2e300, 1e300));
  ASSERT_TRUE(large.ok()) << large.status();
  EXPECT_TRUE(std::isfinite(large->makespan));
}

}  // namespace
}  // namespace dualpipe
