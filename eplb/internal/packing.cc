#include "eplb/internal/packing.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cassert>
#include <functional>
#include <numeric>
#include <queue>
#include <utility>

namespace eplb::internal {

Packing BalancedPacking(std::span<const float> weights, int num_packs) {
  const int n = static_cast<int>(weights.size());
  assert(num_packs > 0 && n % num_packs == 0);
  const int per_pack = n / num_packs;
  Packing result{std::vector<int>(n), std::vector<int>(n, 0)};
  if (per_pack == 1) {
    std::iota(result.pack.begin(), result.pack.end(), 0);
    return result;
  }
  // Heaviest first, equal weights in index order (the reference's stable descending sort), as
  // one ascending sort of 64-bit keys: inverted order-preserving weight bits, then the index.
  // Weights are non-negative, so their bit patterns already sort like their values.
  std::vector<uint64_t> keys(n);
  for (int i = 0; i < n; ++i) {
    keys[i] = (uint64_t{~std::bit_cast<uint32_t>(weights[i])} << 32) | static_cast<uint32_t>(i);
  }
  std::sort(keys.begin(), keys.end());
  // Min-heap on (pack weight, pack index) over packs with room: the top is the reference's
  // lightest pack with room, lowest index first among equals.
  using Entry = std::pair<float, int>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> open;
  for (int p = 0; p < num_packs; ++p) open.push({0.0f, p});
  std::vector<int> pack_items(num_packs, 0);
  for (uint64_t key : keys) {
    const int item = static_cast<int>(key & 0xffffffffu);
    const auto [weight, best] = open.top();
    open.pop();
    result.pack[item] = best;
    result.rank[item] = pack_items[best]++;
    if (pack_items[best] < per_pack) open.push({weight + weights[item], best});
  }
  return result;
}

Replication ReplicateExperts(std::span<const float> weights, int num_phy) {
  const int num_log = static_cast<int>(weights.size());
  assert(num_log > 0 && num_phy >= num_log);
  Replication result{std::vector<int>(num_phy), std::vector<int>(num_phy, 0),
                     std::vector<int>(num_log, 1)};
  std::iota(result.phy2log.begin(), result.phy2log.begin() + num_log, 0);
  // Max-heap on (weight / count, -expert): the top is the reference's first maximum.
  using Entry = std::pair<float, int>;
  auto lower = [](const Entry& a, const Entry& b) {
    return a.first < b.first || (a.first == b.first && a.second > b.second);
  };
  std::vector<Entry> heap(num_log);
  for (int e = 0; e < num_log; ++e) heap[e] = {weights[e], e};
  std::make_heap(heap.begin(), heap.end(), lower);
  for (int i = num_log; i < num_phy; ++i) {
    std::pop_heap(heap.begin(), heap.end(), lower);
    const int e = heap.back().second;
    result.phy2log[i] = e;
    result.rank[i] = result.logcnt[e]++;
    heap.back() = {weights[e] / static_cast<float>(result.logcnt[e]), e};
    std::push_heap(heap.begin(), heap.end(), lower);
  }
  return result;
}

void RefineBySwaps(std::span<const double> weights, int num_packs, int max_swaps,
                   Packing& packing) {
  const int n = static_cast<int>(weights.size());
  // Each pack's items, lightest first.
  std::vector<std::vector<int>> members(num_packs);
  std::vector<double> load(num_packs, 0.0);
  for (int i = 0; i < n; ++i) {
    members[packing.pack[i]].push_back(i);
    load[packing.pack[i]] += weights[i];
  }
  auto lighter = [&](int a, int b) { return weights[a] < weights[b]; };
  for (std::vector<int>& items : members) std::sort(items.begin(), items.end(), lighter);
  for (int swap = 0; swap < max_swaps; ++swap) {
    const int heavy =
        static_cast<int>(std::max_element(load.begin(), load.end()) - load.begin());
    // The swap that brings the heavy pack's load down the most: moving delta = w_a - w_b from
    // the heavy pack to another with load gap g helps when 0 < delta < g and is best near g / 2.
    double best_new_max = load[heavy];
    int best_pack = -1, best_a = -1, best_b = -1;
    for (int other = 0; other < num_packs; ++other) {
      const double gap = load[heavy] - load[other];
      if (other == heavy || gap <= 0.0) continue;
      const std::vector<int>& theirs = members[other];
      for (int a = 0; a < static_cast<int>(members[heavy].size()); ++a) {
        const double w_a = weights[members[heavy][a]];
        const double target = w_a - gap / 2;
        const int at = static_cast<int>(
            std::lower_bound(theirs.begin(), theirs.end(), target,
                             [&](int item, double value) { return weights[item] < value; }) -
            theirs.begin());
        for (int b = std::max(at - 1, 0); b <= std::min(at, static_cast<int>(theirs.size()) - 1);
             ++b) {
          const double delta = w_a - weights[theirs[b]];
          if (delta <= 0.0 || delta >= gap) continue;
          const double new_max = std::max(load[heavy] - delta, load[other] + delta);
          if (new_max < best_new_max) {
            best_new_max = new_max;
            best_pack = other;
            best_a = a;
            best_b = b;
          }
        }
      }
    }
    if (best_pack < 0) return;
    const int item_a = members[heavy][best_a];
    const int item_b = members[best_pack][best_b];
    const double delta = weights[item_a] - weights[item_b];
    load[heavy] -= delta;
    load[best_pack] += delta;
    std::swap(packing.pack[item_a], packing.pack[item_b]);
    std::swap(packing.rank[item_a], packing.rank[item_b]);
    members[heavy][best_a] = item_b;
    members[best_pack][best_b] = item_a;
    std::sort(members[heavy].begin(), members[heavy].end(), lighter);
    std::sort(members[best_pack].begin(), members[best_pack].end(), lighter);
  }
}

std::vector<int> InversePermutation(std::span<const int> perm) {
  std::vector<int> inverse(perm.size(), -1);
  for (size_t i = 0; i < perm.size(); ++i) {
    assert(perm[i] >= 0 && static_cast<size_t>(perm[i]) < perm.size() && inverse[perm[i]] < 0);
    inverse[perm[i]] = static_cast<int>(i);
  }
  return inverse;
}

}  // namespace eplb::internal
