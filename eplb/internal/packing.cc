#include "eplb/internal/packing.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <utility>

namespace eplb::internal {
namespace {

// Up to this many packs a linear scan finds the lightest pack faster than a heap.
constexpr int kMaxScannedPacks = 16;

// RefineBySwaps stops once the heaviest pack is within this fraction of the mean.
constexpr double kBalancedEnough = 1e-3;

// (weight, index) as one integer that orders like the pair: for non-negative floats (and +inf)
// the bit pattern orders like the value.
uint64_t PackKey(float weight, int index) {
  return (uint64_t{std::bit_cast<uint32_t>(weight)} << 32) | static_cast<uint32_t>(index);
}

// The weight of a PackKey.
float KeyWeight(uint64_t key) { return std::bit_cast<float>(static_cast<uint32_t>(key >> 32)); }

}  // namespace

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
  const auto item_at = [&](int i) { return static_cast<int>(keys[i] & 0xffffffffu); };
  if (per_pack == 2 && weights[item_at(num_packs - 1)] > 0.0f) {
    // Pairs whose first num_packs items are all positive, in O(n) after the sort. Each of those
    // items finds an empty pack lighter than every used one, so item i goes to pack i. Then pack
    // p holds weight x_p, non-increasing in p, and each further item fills the lightest pack with
    // room, lowest index among equals: blocks of equal x_p from the last, each in ascending p.
    for (int p = 0; p < num_packs; ++p) result.pack[item_at(p)] = p;
    int next = num_packs;
    for (int end = num_packs; end > 0;) {
      int begin = end - 1;
      while (begin > 0 && weights[item_at(begin - 1)] == weights[item_at(end - 1)]) --begin;
      for (int p = begin; p < end; ++p) {
        const int item = item_at(next++);
        result.pack[item] = p;
        result.rank[item] = 1;
      }
      end = begin;
    }
    return result;
  }
  std::vector<int> pack_items(num_packs, 0);
  if (num_packs <= kMaxScannedPacks) {
    // Few packs: take the smallest key, with full packs keyed above every open one.
    constexpr uint64_t kFull = ~uint64_t{0};
    std::vector<uint64_t> open(num_packs);
    for (int p = 0; p < num_packs; ++p) open[p] = PackKey(0.0f, p);
    for (int i = 0; i < n; ++i) {
      const int item = item_at(i);
      const uint64_t top = *std::min_element(open.begin(), open.end());
      const int best = static_cast<int>(top & 0xffffffffu);
      result.pack[item] = best;
      result.rank[item] = pack_items[best]++;
      open[best] =
          pack_items[best] < per_pack ? PackKey(KeyWeight(top) + weights[item], best) : kFull;
    }
    return result;
  }
  // Many packs: a min-heap over the packs with room, keyed by (pack weight, pack index) packed
  // into 64 bits, whose top is the same pack the scan would pick.
  std::vector<uint64_t> open(num_packs);
  for (int p = 0; p < num_packs; ++p) open[p] = PackKey(0.0f, p);
  for (int i = 0; i < n; ++i) {
    const int item = item_at(i);
    std::pop_heap(open.begin(), open.end(), std::greater<uint64_t>());
    const uint64_t top = open.back();
    open.pop_back();
    const int best = static_cast<int>(top & 0xffffffffu);
    result.pack[item] = best;
    result.rank[item] = pack_items[best]++;
    if (pack_items[best] < per_pack) {
      open.push_back(PackKey(KeyWeight(top) + weights[item], best));
      std::push_heap(open.begin(), open.end(), std::greater<uint64_t>());
    }
  }
  return result;
}

Replication ReplicateExperts(std::span<const float> weights, int num_phy, int max_replicas) {
  const int num_log = static_cast<int>(weights.size());
  assert(num_log > 0 && num_phy >= num_log && max_replicas > 0);
  Replication result{std::vector<int>(num_phy), std::vector<int>(num_phy, 0),
                     std::vector<int>(num_log, 1)};
  std::iota(result.phy2log.begin(), result.phy2log.begin() + num_log, 0);
  // Max-heap on (weight / count, -expert) packed into 64 bits: the top is the reference's first
  // maximum. Experts at max_replicas leave the heap.
  const auto key = [&](int expert) {
    return PackKey(weights[expert] / static_cast<float>(result.logcnt[expert]), ~expert);
  };
  // Without a cap, an expert lighter than the (extra + 1)-th heaviest never gets a replica: to be
  // the maximum it would need all extra + 1 heavier experts to have had one already. So only the
  // others enter the heap.
  const int extra = num_phy - num_log;
  std::vector<float> sorted;
  float threshold = 0.0f;
  if (max_replicas >= num_phy && extra > 0 && extra < num_log) {
    sorted.assign(weights.begin(), weights.end());
    std::nth_element(sorted.begin(), sorted.begin() + extra, sorted.end(), std::greater<float>());
    threshold = sorted[extra];
  }
  std::vector<uint64_t> heap;
  for (int e = 0; e < num_log; ++e) {
    if (weights[e] >= threshold && result.logcnt[e] < max_replicas) heap.push_back(key(e));
  }
  std::make_heap(heap.begin(), heap.end());
  for (int i = num_log; i < num_phy; ++i) {
    if (heap.empty()) {
      // Every expert is at the cap: lift it.
      max_replicas = std::numeric_limits<int>::max();
      for (int e = 0; e < num_log; ++e) heap.push_back(key(e));
      std::make_heap(heap.begin(), heap.end());
    }
    std::pop_heap(heap.begin(), heap.end());
    const int e = ~static_cast<int>(heap.back() & 0xffffffffu);
    result.phy2log[i] = e;
    result.rank[i] = result.logcnt[e]++;
    if (result.logcnt[e] < max_replicas) {
      heap.back() = key(e);
      std::push_heap(heap.begin(), heap.end());
    } else {
      heap.pop_back();
    }
  }
  return result;
}

void RefineBySwaps(std::span<const double> weights, int num_packs, int max_swaps,
                   Packing& packing) {
  const int n = static_cast<int>(weights.size());
  // Each pack's (weight, item), lightest first.
  using Member = std::pair<double, int>;
  std::vector<std::vector<Member>> members(num_packs);
  std::vector<double> load(num_packs, 0.0);
  for (int i = 0; i < n; ++i) {
    members[packing.pack[i]].push_back({weights[i], i});
    load[packing.pack[i]] += weights[i];
  }
  for (std::vector<Member>& items : members) std::sort(items.begin(), items.end());
  const double mean = std::accumulate(load.begin(), load.end(), 0.0) / num_packs;
  for (int swap = 0; swap < max_swaps; ++swap) {
    const int heavy = static_cast<int>(std::max_element(load.begin(), load.end()) - load.begin());
    if (load[heavy] <= mean * (1.0 + kBalancedEnough)) return;
    // The swap that brings the heavy pack's load down the most: moving delta = w_a - w_b from
    // the heavy pack to another with load gap g helps when 0 < delta < g and is best near g / 2,
    // so for each a only the two b around w_a - g / 2 matter. That point rises with w_a, so one
    // pointer walks each other pack once.
    const std::vector<Member>& ours = members[heavy];
    double best_new_max = load[heavy];
    int best_pack = -1, best_a = -1, best_b = -1;
    for (int other = 0; other < num_packs; ++other) {
      const double gap = load[heavy] - load[other];
      if (other == heavy || gap <= 0.0) continue;
      const std::vector<Member>& theirs = members[other];
      const int size = static_cast<int>(theirs.size());
      int at = 0;  // First b with w_b >= w_a - gap / 2.
      for (int a = 0; a < static_cast<int>(ours.size()); ++a) {
        const double w_a = ours[a].first;
        while (at < size && theirs[at].first < w_a - gap / 2) ++at;
        for (int b = std::max(at - 1, 0); b <= std::min(at, size - 1); ++b) {
          const double delta = w_a - theirs[b].first;
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

std::vector<int> InversePermutation(std::span<const int> perm) {
  std::vector<int> inverse(perm.size(), -1);
  for (size_t i = 0; i < perm.size(); ++i) {
    assert(perm[i] >= 0 && static_cast<size_t>(perm[i]) < perm.size() && inverse[perm[i]] < 0);
    inverse[perm[i]] = static_cast<int>(i);
  }
  return inverse;
}

}  // namespace eplb::internal
