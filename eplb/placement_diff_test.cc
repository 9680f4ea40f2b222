#include "eplb/placement_diff.h"

#include <algorithm>
#include <vector>

#include "eplb/rebalance.h"
#include "eplb/synthetic_loads.h"
#include "gtest/gtest.h"

namespace eplb {
namespace {

// 1 layer, 4 experts, 4 GPUs of 2 replicas on 2 nodes. Only phy2log matters to the diff.
Placement FourGpus(std::vector<int32_t> phy2log) {
  Placement placement;
  placement.num_gpus = 4;
  placement.num_nodes = 2;
  placement.phy2log = Matrix<int32_t>(1, 8, std::move(phy2log));
  placement.logcnt = Matrix<int32_t>(1, 4, 2);
  return placement;
}

TEST(DiffPlacements, SamePlacementNeedsNoCopies) {
  const Placement placement = FourGpus({0, 1, 2, 3, 0, 2, 1, 3});
  absl::StatusOr<std::vector<ExpertCopy>> copies = DiffPlacements(placement, placement);
  ASSERT_TRUE(copies.ok()) << copies.status();
  EXPECT_TRUE(copies->empty());
}

TEST(DiffPlacements, CopiesOnlyMissingReplicasPreferringTheSameNode) {
  // GPU 0 keeps both experts (in another order); GPU 1 needs expert 0, held by GPU 0 (its node)
  // and GPU 2; GPU 2 needs expert 3 twice, held by GPU 1 and GPU 3 (its node); GPU 3 keeps
  // expert 1 and needs expert 2 from GPU 2 (its node).
  const Placement from = FourGpus({0, 1, 2, 3, 0, 2, 1, 3});
  const Placement to = FourGpus({1, 0, 2, 0, 3, 3, 1, 2});
  absl::StatusOr<std::vector<ExpertCopy>> copies = DiffPlacements(from, to);
  ASSERT_TRUE(copies.ok()) << copies.status();
  EXPECT_EQ(*copies, (std::vector<ExpertCopy>{
                         {.layer = 0, .expert = 0, .src_gpu = 0, .dst_gpu = 1, .dst_replica = 3},
                         {.layer = 0, .expert = 3, .src_gpu = 3, .dst_gpu = 2, .dst_replica = 4},
                         {.layer = 0, .expert = 3, .src_gpu = 3, .dst_gpu = 2, .dst_replica = 5},
                         {.layer = 0, .expert = 2, .src_gpu = 2, .dst_gpu = 3, .dst_replica = 7}}));
}

TEST(DiffPlacements, SpreadsCopiesOverSourcesOfTheSameNode) {
  // GPU 2 needs expert 0 twice; its holders, GPUs 0 and 1, are both on the other node, so each
  // serves one copy.
  const Placement from = FourGpus({0, 1, 0, 2, 3, 3, 3, 3});
  const Placement to = FourGpus({0, 1, 0, 2, 0, 0, 3, 3});
  absl::StatusOr<std::vector<ExpertCopy>> copies = DiffPlacements(from, to);
  ASSERT_TRUE(copies.ok()) << copies.status();
  ASSERT_EQ(copies->size(), 2u);
  EXPECT_EQ((*copies)[0].src_gpu, 0);
  EXPECT_EQ((*copies)[1].src_gpu, 1);
}

// Applying the copies to `from` gives every GPU of `to` the same multiset of experts, and the
// number of copies is the lower bound.
void ExpectRealises(const Placement& from, const Placement& to,
                    const std::vector<ExpertCopy>& copies) {
  const int per_gpu = to.replicas_per_gpu();
  for (int layer = 0; layer < to.num_layers(); ++layer) {
    size_t lower_bound = 0;
    for (int gpu = 0; gpu < to.num_gpus; ++gpu) {
      std::vector<int> old_count(to.num_experts()), new_count(to.num_experts());
      for (int slot = 0; slot < per_gpu; ++slot) {
        ++old_count[from.phy2log(layer, gpu * per_gpu + slot)];
        ++new_count[to.phy2log(layer, gpu * per_gpu + slot)];
      }
      std::vector<int> have(old_count);
      for (const ExpertCopy& copy : copies) {
        if (copy.layer != layer || copy.dst_gpu != gpu) continue;
        EXPECT_EQ(to.phy2log(layer, copy.dst_replica), copy.expert);
        EXPECT_EQ(copy.dst_replica / per_gpu, gpu);
        bool source_had_it = false;
        for (int slot = 0; slot < per_gpu; ++slot) {
          source_had_it |= from.phy2log(layer, copy.src_gpu * per_gpu + slot) == copy.expert;
        }
        EXPECT_TRUE(source_had_it);
        ++have[copy.expert];
      }
      for (int e = 0; e < to.num_experts(); ++e) {
        EXPECT_GE(have[e], new_count[e]);
        lower_bound += std::max(0, new_count[e] - old_count[e]);
      }
    }
    EXPECT_EQ(std::count_if(copies.begin(), copies.end(),
                            [&](const ExpertCopy& c) { return c.layer == layer; }),
              static_cast<long>(lower_bound));
  }
}

TEST(DiffPlacements, RealisesRebalancesWithTheFewestCopies) {
  const Matrix<double> before = ZipfLoads(4, 64, 1.0, 1e5, 1);
  const Matrix<double> after = ZipfLoads(4, 64, 1.0, 1e5, 2);
  for (Policy policy : {Policy::kDeepSeek, Policy::kRefined}) {
    absl::StatusOr<Placement> from = Rebalance(before, 96, 8, 2, 16, policy);
    absl::StatusOr<Placement> to = Rebalance(after, 96, 8, 2, 16, policy);
    ASSERT_TRUE(from.ok() && to.ok());
    absl::StatusOr<std::vector<ExpertCopy>> copies = DiffPlacements(*from, *to);
    ASSERT_TRUE(copies.ok()) << copies.status();
    EXPECT_FALSE(copies->empty());
    ExpectRealises(*from, *to, *copies);
  }
}

TEST(DiffPlacements, RejectsMismatchedOrBrokenPlacements) {
  const Placement four = FourGpus({0, 1, 2, 3, 0, 2, 1, 3});
  Placement two_nodes_more = four;
  two_nodes_more.num_nodes = 4;
  EXPECT_EQ(DiffPlacements(four, two_nodes_more).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DiffPlacements(four, FourGpus({0, 1, 2, 3, 0, 2, 1, 7})).status().message(),
            "replica 7 of layer 0 names no expert in [0, 4)");
  EXPECT_EQ(DiffPlacements(FourGpus({0, 1, 2, 0, 0, 2, 1, 1}), four).status().message(),
            "expert 3 of layer 0 has no replica in the old placement");
}

}  // namespace
}  // namespace eplb
