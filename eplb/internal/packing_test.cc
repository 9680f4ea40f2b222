#include "eplb/internal/packing.h"

#include <vector>

#include "gtest/gtest.h"

namespace eplb::internal {
namespace {

TEST(BalancedPacking, HeaviestFirstToLightestPackWithRoom) {
  // Visit order 9, 8, 5 (item 1), 5 (item 4), 2, 1. Pack loads: 9 | 0 -> 9 | 8 -> 9 | 13 ->
  // 14 | 13 -> 14 | 15 (pack 1 full) -> 15 | 15.
  const std::vector<float> weights = {9, 5, 2, 8, 5, 1};
  const Packing packing = BalancedPacking(weights, 2);
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 1, 1, 1, 0, 0}));
  EXPECT_EQ(packing.rank, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST(BalancedPacking, TiesGoToLowerIndices) {
  const std::vector<float> weights = {1, 1, 1, 1};
  const Packing packing = BalancedPacking(weights, 2);
  // Items in index order; packs tie at 0 -> pack 0, then pack 1 is lighter, then tie -> pack 0.
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(packing.rank, (std::vector<int>{0, 0, 1, 1}));
}

TEST(BalancedPacking, OneItemPerPackKeepsIndexOrder) {
  const std::vector<float> weights = {1, 7, 3};
  const Packing packing = BalancedPacking(weights, 3);
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(packing.rank, (std::vector<int>{0, 0, 0}));
}

TEST(ReplicateExperts, GivesReplicasToHighestLoadPerReplica) {
  const std::vector<float> weights = {10, 4, 6};
  const Replication rep = ReplicateExperts(weights, 6);
  // 10 -> 5 (expert 0 twice); then 6 (expert 2) -> 3; then 5 (expert 0) -> 3.33.
  EXPECT_EQ(rep.phy2log, (std::vector<int>{0, 1, 2, 0, 2, 0}));
  EXPECT_EQ(rep.rank, (std::vector<int>{0, 0, 0, 1, 1, 2}));
  EXPECT_EQ(rep.logcnt, (std::vector<int>{3, 1, 2}));
}

TEST(ReplicateExperts, TiesGoToTheFirstMaximum) {
  const std::vector<float> weights = {2, 4, 4};
  const Replication rep = ReplicateExperts(weights, 5);
  EXPECT_EQ(rep.phy2log, (std::vector<int>{0, 1, 2, 1, 2}));
}

TEST(ReplicateExperts, DividesInFloat32) {
  // 0.3f / 3 rounds to 0.1f in float32 (in double it would be larger), so after expert 1 has
  // three replicas the two tie and the first maximum, expert 0, wins.
  const std::vector<float> weights = {0.1f, 0.3f};
  const Replication rep = ReplicateExperts(weights, 5);
  EXPECT_EQ(rep.phy2log, (std::vector<int>{0, 1, 1, 1, 0}));
}

TEST(ReplicateExperts, CapStopsAnExpertUntilAllReachIt) {
  // Uncapped, expert 0 would take all four extra replicas. Capped at 2 it takes one; the others
  // get one each; then everyone is at the cap and expert 0 (highest load per replica) resumes.
  const std::vector<float> weights = {100, 2, 1};
  const Replication rep = ReplicateExperts(weights, 7, /*max_replicas=*/2);
  EXPECT_EQ(rep.phy2log, (std::vector<int>{0, 1, 2, 0, 1, 2, 0}));
  EXPECT_EQ(rep.logcnt, (std::vector<int>{3, 2, 2}));
  EXPECT_EQ(ReplicateExperts(weights, 7).logcnt, (std::vector<int>{5, 1, 1}));
}

double MaxPackLoad(const std::vector<double>& weights, const Packing& packing, int num_packs) {
  std::vector<double> load(num_packs, 0.0);
  for (size_t i = 0; i < weights.size(); ++i) load[packing.pack[i]] += weights[i];
  return *std::max_element(load.begin(), load.end());
}

TEST(RefineBySwaps, LowersTheMaximumAndKeepsRanksAPermutation) {
  // Packs {10, 9} = 19 and {2, 1} = 3: swapping 9 and 1 (or 10 and 2) gives 11 and 11.
  const std::vector<double> weights = {10, 9, 2, 1};
  Packing packing{{0, 0, 1, 1}, {0, 1, 0, 1}};
  RefineBySwaps(weights, 2, 10, packing);
  EXPECT_EQ(MaxPackLoad(weights, packing, 2), 11.0);
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 1, 1, 0}));
  EXPECT_EQ(packing.rank, (std::vector<int>{0, 1, 0, 1}));
}

TEST(RefineBySwaps, LeavesAnOptimalPackingAlone) {
  const std::vector<double> weights = {4, 1, 3, 2};
  Packing packing{{0, 0, 1, 1}, {0, 1, 0, 1}};
  RefineBySwaps(weights, 2, 10, packing);
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 0, 1, 1}));
}

TEST(RefineBySwaps, StopsAfterMaxSwaps) {
  const std::vector<double> weights = {10, 9, 2, 1};
  Packing packing{{0, 0, 1, 1}, {0, 1, 0, 1}};
  RefineBySwaps(weights, 2, 0, packing);
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 0, 1, 1}));
}

TEST(InversePermutation, Inverts) {
  const std::vector<int> perm = {2, 0, 1};
  EXPECT_EQ(InversePermutation(perm), (std::vector<int>{1, 2, 0}));
}

}  // namespace
}  // namespace eplb::internal
