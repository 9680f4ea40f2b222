#include "eplb/balancedness.h"

#include <vector>

#include "gtest/gtest.h"

namespace eplb {
namespace {

// 2 layers, 3 experts, 4 replicas on 2 nodes x 1 GPU x 2 slots.
Placement TwoGpuPlacement() {
  Placement placement;
  placement.num_gpus = 2;
  placement.num_nodes = 2;
  placement.max_replicas = 2;
  placement.phy2log = Matrix<int32_t>(2, 4, std::vector<int32_t>{0, 1, 0, 2, 0, 1, 2, 2});
  placement.logcnt = Matrix<int32_t>(2, 3, std::vector<int32_t>{2, 1, 1, 1, 1, 2});
  placement.log2phy =
      Matrix<int32_t>(2, 6, std::vector<int32_t>{0, 2, 1, -1, 3, -1, 0, -1, 1, -1, 2, 3});
  return placement;
}

TEST(GpuLoads, SplitsEachExpertOverItsReplicas) {
  const Placement placement = TwoGpuPlacement();
  const std::vector<double> loads = {8, 3, 1};
  EXPECT_EQ(GpuLoads(loads, placement.phy2log.row(0), placement.logcnt.row(0), 2),
            (std::vector<double>{4 + 3, 4 + 1}));
}

TEST(MeanOverMax, IsOneWhenBalancedOrIdle) {
  EXPECT_EQ(MeanOverMax(std::vector<double>{2, 2}), 1.0);
  EXPECT_EQ(MeanOverMax(std::vector<double>{0, 0}), 1.0);
  EXPECT_EQ(MeanOverMax(std::vector<double>{1, 3}), 2.0 / 3.0);
}

TEST(ComputeBalancedness, PerLayerAndPerNode) {
  const Matrix<double> loads(2, 3, std::vector<double>{8, 3, 1, 6, 2, 4});
  absl::StatusOr<BalancednessReport> report = ComputeBalancedness(TwoGpuPlacement(), loads);
  ASSERT_TRUE(report.ok()) << report.status();
  // Layer 0: GPUs 7 and 5 -> 6 / 7. Layer 1: GPUs 6 + 2 = 8 and 2 + 2 = 4 -> 6 / 8.
  EXPECT_EQ(report->per_layer, (std::vector<double>{6.0 / 7.0, 0.75}));
  // One GPU per node: every node is balanced.
  EXPECT_EQ(report->per_node, Matrix<double>(2, 2, 1.0));
}

TEST(ComputeBalancedness, RejectsMismatchedLoads) {
  const Matrix<double> loads(2, 4, 1.0);
  EXPECT_EQ(ComputeBalancedness(TwoGpuPlacement(), loads).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace eplb
