#include "eplb/internal/packing.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"

namespace eplb::internal {
namespace {

// The workspace of the calls in these tests; one thread, one call at a time, so one is enough (and
// reusing it across sizes tests that leftovers in its buffers do not leak into results).
PackingWorkspace& Ws() {
  static PackingWorkspace* const workspace = new PackingWorkspace();
  return *workspace;
}

TEST(BalancedPacking, HeaviestFirstToLightestPackWithRoom) {
  // Visit order 9, 8, 5 (item 1), 5 (item 4), 2, 1. Pack loads: 9 | 0 -> 9 | 8 -> 9 | 13 ->
  // 14 | 13 -> 14 | 15 (pack 1 full) -> 15 | 15.
  const std::vector<float> weights = {9, 5, 2, 8, 5, 1};
  const Packing packing = BalancedPacking(weights, 2, Ws());
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 1, 1, 1, 0, 0}));
  EXPECT_EQ(packing.rank, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST(BalancedPacking, TiesGoToLowerIndices) {
  const std::vector<float> weights = {1, 1, 1, 1};
  const Packing packing = BalancedPacking(weights, 2, Ws());
  // Items in index order; packs tie at 0 -> pack 0, then pack 1 is lighter, then tie -> pack 0.
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(packing.rank, (std::vector<int>{0, 0, 1, 1}));
}

TEST(BalancedPacking, OneItemPerPackKeepsIndexOrder) {
  const std::vector<float> weights = {1, 7, 3};
  const Packing packing = BalancedPacking(weights, 3, Ws());
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
  RefineBySwaps(weights, 2, 10, packing, Ws());
  EXPECT_EQ(MaxPackLoad(weights, packing, 2), 11.0);
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 1, 1, 0}));
  EXPECT_EQ(packing.rank, (std::vector<int>{0, 1, 0, 1}));
}

TEST(RefineBySwaps, LeavesAnOptimalPackingAlone) {
  const std::vector<double> weights = {4, 1, 3, 2};
  Packing packing{{0, 0, 1, 1}, {0, 1, 0, 1}};
  RefineBySwaps(weights, 2, 10, packing, Ws());
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 0, 1, 1}));
}

TEST(RefineBySwaps, StopsAfterMaxSwaps) {
  const std::vector<double> weights = {10, 9, 2, 1};
  Packing packing{{0, 0, 1, 1}, {0, 1, 0, 1}};
  RefineBySwaps(weights, 2, 0, packing, Ws());
  EXPECT_EQ(packing.pack, (std::vector<int>{0, 0, 1, 1}));
}

// Plain ports of eplb.py's balanced_packing and replicate_experts (stable sort, linear scans,
// float32 arithmetic), against which the optimised versions are checked.
Packing ReferencePacking(const std::vector<float>& weights, int num_packs) {
  const int n = static_cast<int>(weights.size());
  const int per_pack = n / num_packs;
  Packing result{std::vector<int>(n), std::vector<int>(n, 0)};
  if (per_pack == 1) {
    std::iota(result.pack.begin(), result.pack.end(), 0);
    return result;
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return weights[a] > weights[b]; });
  std::vector<float> pack_weight(num_packs, 0.0f);
  std::vector<int> pack_items(num_packs, 0);
  for (int item : order) {
    int best = -1;
    for (int p = 0; p < num_packs; ++p) {
      if (pack_items[p] < per_pack && (best < 0 || pack_weight[p] < pack_weight[best])) best = p;
    }
    result.pack[item] = best;
    result.rank[item] = pack_items[best]++;
    pack_weight[best] += weights[item];
  }
  return result;
}

std::vector<int> ReferenceReplication(const std::vector<float>& weights, int num_phy) {
  std::vector<int> phy2log(num_phy), count(weights.size(), 1);
  std::iota(phy2log.begin(), phy2log.begin() + weights.size(), 0);
  for (int i = static_cast<int>(weights.size()); i < num_phy; ++i) {
    int best = 0;
    for (size_t e = 1; e < weights.size(); ++e) {
      if (weights[e] / static_cast<float>(count[e]) >
          weights[best] / static_cast<float>(count[best])) {
        best = static_cast<int>(e);
      }
    }
    phy2log[i] = best;
    ++count[best];
  }
  return phy2log;
}

// RefineBySwaps as first written: each pack's items in its own vector, fully re-sorted after
// every swap, and every pair of items tried.
void ReferenceRefine(const std::vector<double>& weights, int num_packs, int max_swaps,
                     Packing& packing) {
  using Member = std::pair<double, int>;
  std::vector<std::vector<Member>> members(num_packs);
  std::vector<double> load(num_packs, 0.0);
  for (size_t i = 0; i < weights.size(); ++i) {
    members[packing.pack[i]].push_back({weights[i], static_cast<int>(i)});
    load[packing.pack[i]] += weights[i];
  }
  for (std::vector<Member>& items : members) std::sort(items.begin(), items.end());
  const double mean = std::accumulate(load.begin(), load.end(), 0.0) / num_packs;
  for (int swap = 0; swap < max_swaps; ++swap) {
    const int heavy = static_cast<int>(std::max_element(load.begin(), load.end()) - load.begin());
    if (load[heavy] <= mean * 1.001) return;
    double best_new_max = load[heavy];
    int best_pack = -1, best_a = -1, best_b = -1;
    for (int other = 0; other < num_packs; ++other) {
      const double gap = load[heavy] - load[other];
      if (other == heavy || gap <= 0.0) continue;
      for (size_t a = 0; a < members[heavy].size(); ++a) {
        for (size_t b = 0; b < members[other].size(); ++b) {
          const double delta = members[heavy][a].first - members[other][b].first;
          if (delta <= 0.0 || delta >= gap) continue;
          const double new_max = std::max(load[heavy] - delta, load[other] + delta);
          if (new_max < best_new_max) {
            best_new_max = new_max;
            best_pack = other;
            best_a = static_cast<int>(a);
            best_b = static_cast<int>(b);
          }
        }
      }
    }
    if (best_pack < 0) return;
    Member& a = members[heavy][best_a];
    Member& b = members[best_pack][best_b];
    const double delta = a.first - b.first;
    load[heavy] -= delta;
    load[best_pack] += delta;
    std::swap(packing.pack[a.second], packing.pack[b.second]);
    std::swap(packing.rank[a.second], packing.rank[b.second]);
    std::swap(a, b);
    std::sort(members[heavy].begin(), members[heavy].end());
    std::sort(members[best_pack].begin(), members[best_pack].end());
  }
}

// Weights with many ties and zeros, or spread-out floats.
std::vector<float> RandomWeights(int n, bool ties, std::mt19937& rng) {
  std::vector<float> weights(n);
  for (float& w : weights) {
    w = ties ? static_cast<float>(rng() % 4) : static_cast<float>(rng() % 100000) / 7.0f;
  }
  return weights;
}

// HeaviestFirst's order as a new vector.
std::vector<int> Order(absl::Span<const float> weights) {
  std::vector<int> order(weights.size());
  HeaviestFirst(weights, absl::MakeSpan(order), Ws());
  return order;
}

// ReplicateAndPack's result as a new value.
ReplicatedPacking Replicated(absl::Span<const float> weights, int num_phy, int num_packs,
                             int max_replicas = std::numeric_limits<int>::max()) {
  ReplicatedPacking result;
  ReplicateAndPack(weights, Order(weights), num_phy, num_packs, max_replicas, result, Ws());
  return result;
}

TEST(BalancedPacking, MatchesThePlainReference) {
  std::mt19937 rng(11);
  for (int num_packs : {1, 2, 3, 8, 16, 17, 40, 144}) {
    for (int per_pack : {1, 2, 3, 9}) {
      for (bool ties : {false, true}) {
        for (int trial = 0; trial < 5; ++trial) {
          const std::vector<float> weights = RandomWeights(num_packs * per_pack, ties, rng);
          const Packing fast = BalancedPacking(weights, num_packs, Ws());
          const Packing plain = ReferencePacking(weights, num_packs);
          ASSERT_EQ(fast.pack, plain.pack) << num_packs << " packs of " << per_pack;
          ASSERT_EQ(fast.rank, plain.rank) << num_packs << " packs of " << per_pack;
        }
      }
    }
  }
}

TEST(ReplicateExperts, MatchesThePlainReference) {
  std::mt19937 rng(12);
  for (int num_log : {1, 5, 64, 256}) {
    for (int extra : {0, 1, 8, 32, 300}) {
      for (bool ties : {false, true}) {
        const std::vector<float> weights = RandomWeights(num_log, ties, rng);
        ASSERT_EQ(ReplicateExperts(weights, num_log + extra).phy2log,
                  ReferenceReplication(weights, num_log + extra))
            << num_log << " experts, " << extra << " extra";
      }
    }
  }
}

TEST(HeaviestFirst, IsTheStableDescendingSort) {
  std::mt19937 rng(13);
  for (int n : {1, 7, 63, 64, 72, 127, 128, 300, 2000}) {
    // Spread-out weights, many ties, and a cluster (one bucket when the range is coarsened) with
    // an outlier and zeros.
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<float> weights = RandomWeights(n, kind == 1, rng);
      if (kind == 2) {
        for (float& w : weights) w = 1000.0f + static_cast<float>(rng() % 1000) / 1024.0f;
        weights[rng() % n] = 1e30f;
        weights[rng() % n] = 0.0f;
      }
      std::vector<int> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return weights[a] > weights[b]; });
      ASSERT_EQ(Order(weights), order) << n << " items of kind " << kind;
    }
  }
}

// BalancedPacking of the replicas of `rep` (weight / count in float32 each) into num_packs.
Packing PackReplicas(absl::Span<const float> weights, const Replication& rep, int num_packs) {
  std::vector<float> replica_loads(rep.phy2log.size());
  for (size_t p = 0; p < replica_loads.size(); ++p) {
    const int e = rep.phy2log[p];
    replica_loads[p] = weights[e] / static_cast<float>(rep.logcnt[e]);
  }
  return BalancedPacking(replica_loads, num_packs, Ws());
}

// ReplicateAndPack's result equals a separate replication and packing, field by field.
void ExpectSameReplicatedPacking(const ReplicatedPacking& fast, const Replication& rep,
                                 const Packing& packing, const std::string& where) {
  ASSERT_EQ(fast.rep.phy2log, rep.phy2log) << where;
  ASSERT_EQ(fast.rep.rank, rep.rank) << where;
  ASSERT_EQ(fast.rep.logcnt, rep.logcnt) << where;
  ASSERT_EQ(fast.packing.pack, packing.pack) << where;
  ASSERT_EQ(fast.packing.rank, packing.rank) << where;
}

TEST(ReplicateAndPack, MatchesReplicationThenPacking) {
  std::mt19937 rng(14);
  for (int num_log : {1, 5, 64, 256}) {
    for (int extra : {0, 1, 8, 32, 300}) {
      const int num_phy = num_log + extra;
      for (int num_packs : {1, 2, 3, 8, 144, num_phy}) {
        if (num_phy % num_packs != 0) continue;
        for (bool ties : {false, true}) {
          const std::vector<float> weights = RandomWeights(num_log, ties, rng);
          const ReplicatedPacking fast = Replicated(weights, num_phy, num_packs);
          const Replication rep = ReplicateExperts(weights, num_phy);
          const Packing packing = PackReplicas(weights, rep, num_packs);
          const std::string where = std::to_string(num_log) + " experts, " + std::to_string(extra) +
                                    " extra, " + std::to_string(num_packs) + " packs";
          ExpectSameReplicatedPacking(fast, rep, packing, where);
          if (testing::Test::HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(ReplicateAndPack, WithACapMatchesCappedReplicationThenPacking) {
  std::mt19937 rng(16);
  for (int num_log : {1, 5, 64}) {
    for (int extra : {1, 8, 32, 300}) {
      const int num_phy = num_log + extra;
      for (int max_replicas : {1, 2, 3, 8}) {
        for (bool ties : {false, true}) {
          const std::vector<float> weights = RandomWeights(num_log, ties, rng);
          const int num_packs = num_phy % 8 == 0 ? 8 : 1;
          const ReplicatedPacking fast = Replicated(weights, num_phy, num_packs, max_replicas);
          const Replication rep = ReplicateExperts(weights, num_phy, max_replicas);
          const Packing packing = PackReplicas(weights, rep, num_packs);
          const std::string where = std::to_string(num_log) + " experts, " + std::to_string(extra) +
                                    " extra, cap " + std::to_string(max_replicas);
          ExpectSameReplicatedPacking(fast, rep, packing, where);
          if (testing::Test::HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(PackReplicated, SideBySideMatchesOneByOne) {
  std::mt19937 rng(17);
  for (int num_log : {5, 64}) {
    for (int extra : {0, 3, 8}) {
      const int num_phy = num_log + extra;
      for (int num_packs : {1, 8, num_phy / 2, num_phy}) {
        if (num_packs == 0 || num_phy % num_packs != 0) continue;
        // Plans with ties and zeros (their first items may not fill the packs) and without.
        std::vector<ReplicatedPacking> plans(4);
        std::vector<ReplicatedPacking> alone(4);
        for (int k = 0; k < 4; ++k) {
          const std::vector<float> weights = RandomWeights(num_log, /*ties=*/k % 2 == 0, rng);
          const std::vector<int> order = Order(weights);
          ReplicateForPacking(weights, order, num_phy, std::numeric_limits<int>::max(), plans[k],
                              Ws());
          ReplicateAndPack(weights, order, num_phy, num_packs, std::numeric_limits<int>::max(),
                           alone[k], Ws());
        }
        PackReplicated(absl::MakeSpan(plans), num_packs, Ws());
        for (int k = 0; k < 4; ++k) {
          const std::string where = std::to_string(num_log) + " experts, " + std::to_string(extra) +
                                    " extra, " + std::to_string(num_packs) + " packs, plan " +
                                    std::to_string(k);
          ExpectSameReplicatedPacking(plans[k], alone[k].rep, alone[k].packing, where);
          if (testing::Test::HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(RefineBySwaps, MatchesThePlainReference) {
  std::mt19937 rng(15);
  for (int num_packs : {2, 3, 8, 16}) {
    for (int per_pack : {1, 2, 3, 9}) {
      for (bool ties : {false, true}) {
        for (int trial = 0; trial < 5; ++trial) {
          const std::vector<float> weights32 = RandomWeights(num_packs * per_pack, ties, rng);
          const std::vector<double> weights(weights32.begin(), weights32.end());
          Packing fast = BalancedPacking(weights32, num_packs, Ws());
          Packing plain = fast;
          RefineBySwaps(weights, num_packs, static_cast<int>(weights.size()), fast, Ws());
          ReferenceRefine(weights, num_packs, static_cast<int>(weights.size()), plain);
          ASSERT_EQ(fast.pack, plain.pack) << num_packs << " packs of " << per_pack;
          ASSERT_EQ(fast.rank, plain.rank) << num_packs << " packs of " << per_pack;
        }
      }
    }
  }
}

}  // namespace
}  // namespace eplb::internal
