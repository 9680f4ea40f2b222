#include "dualpipe/zbv_schedule.h"

#include <string>
#include <tuple>

#include "dualpipe/internal/golden.h"
#include "dualpipe/schedule.h"
#include "dualpipe/simulator.h"
#include "dualpipe/validator.h"
#include "gtest/gtest.h"

namespace dualpipe {
namespace {

// Costs from F, I, W and the P2P latency.
OpCosts Costs(double f, double i, double w, double p2p) {
  OpCosts costs;
  costs.forward = f;
  costs.backward = i + w;
  costs.weight = w;
  costs.p2p_latency = p2p;
  return costs;
}

// The op order depends on the costs; these goldens are the output of zbv.py's
// PipelineGraph.create_schedule (sail-sg/zero-bubble-pipeline-parallelism; pure Python, run with
// its Megatron imports stubbed) for the same costs and memory units f=2, b=-1, w=-1.
TEST(ZbvTest, MatchesTheReferenceHeuristicForOtherCosts) {
  const std::tuple<int, int, OpCosts, const char*> cases[] = {
      {4, 8, Costs(1, 2, 1, 0.5), "zbv_r4_m8_f1_i2_w1_p0.5.txt"},
      {3, 9, Costs(3, 2, 1, 1), "zbv_r3_m9_f3_i2_w1_p1.txt"},
      {6, 12, Costs(1, 1.5, 0.5, 0.25), "zbv_r6_m12_f1_i1.5_w0.5_p0.25.txt"},
  };
  for (const auto& [devices, microbatches, costs, golden_name] : cases) {
    absl::StatusOr<Schedule> schedule = GenerateZBV(devices, microbatches, costs);
    ASSERT_TRUE(schedule.ok()) << schedule.status();
    absl::StatusOr<std::string> golden = internal::ReadGolden(golden_name);
    ASSERT_TRUE(golden.ok()) << golden.status();
    EXPECT_EQ(FormatSchedule(*schedule), *golden) << golden_name;
    EXPECT_TRUE(ValidateSchedule(*schedule).ok()) << ValidateSchedule(*schedule);
  }
}

TEST(ZbvTest, OnlyTheSkewOfTheFirstForwardsIsLeftWithEqualCosts) {
  const OpCosts costs = Costs(1, 1, 1, 0);
  absl::StatusOr<Schedule> schedule = GenerateZBV(4, 16, costs);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  absl::StatusOr<Simulation> sim = Simulate(*schedule, costs);
  ASSERT_TRUE(sim.ok()) << sim.status();
  // What is left is the skew of the first forwards, (devices-1)F per rank; over the same 8 stages
  // 1F1B idles (8-1)(F+B) = 21 and DualPipeV (8/2-1)(F&B+B-3W) = 6 with F&B = F+B.
  for (const RankStats& rank : sim->ranks) {
    EXPECT_DOUBLE_EQ(rank.bubble, 3);
    EXPECT_EQ(rank.parameter_copies, 2);
    EXPECT_LE(rank.peak_activations, 8);  // The memory cap: 1F1B's peak over 8 stages.
  }
}

TEST(ZbvTest, RejectsBadRequests) {
  EXPECT_EQ(GenerateZBV(0, 4, OpCosts()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateZBV(4, 0, OpCosts()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateZBV(4, 8, Costs(-1, 1, 1, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateZBV(4, 8, Costs(1, 1, 1, -1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dualpipe
