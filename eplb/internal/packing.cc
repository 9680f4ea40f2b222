#include "eplb/internal/packing.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <utility>

#include "core/check.h"

namespace eplb::internal {
namespace {

class TreePacker;

// An item of a pack in RefineBySwaps: (weight, item).
using Member = std::pair<double, int>;

}  // namespace

// The buffers of a PackingWorkspace, named for their users; buffers of different uses may be live
// together.
struct PackingWorkspace::Buffers {
  std::vector<uint32_t> bucket_starts;  // SortKeys.
  std::vector<uint32_t> buckets;
  std::vector<uint64_t> sort_buffer;
  std::vector<uint64_t> sort_keys;  // BalancedPacking, HeaviestFirst.
  std::vector<uint64_t> tree;       // PackHeaviestFirst.
  std::vector<int> pack_items;
  std::vector<TreePacker> packers;
  std::vector<uint64_t> heap;  // ReplicateForPacking.
  std::vector<uint64_t> split;
  std::vector<int> replicated;
  std::vector<absl::Span<const uint64_t>> sorted;  // PackReplicated.
  std::vector<absl::Span<const float>> weights;
  std::vector<Packing*> results;
  std::vector<Member> members;  // RefineBySwaps.
  std::vector<double> pack_loads;
  std::vector<int> by_load;
};

namespace {

// RefineBySwaps stops once the heaviest pack is within this fraction of the mean.
constexpr double kBalancedEnough = 1e-3;

// RefineBySwaps sorts packs of up to this many items with an insertion sort.
constexpr int kMaxInsertionSort = 64;

// Relative margin, far above double rounding, by which RefineBySwaps' bound on a swap's result
// must exceed the best result found before the swap is skipped.
constexpr double kRoundingMargin = 1e-9;

// (weight, index) as one integer that orders like the pair: for non-negative floats (and +inf)
// the bit pattern orders like the value.
uint64_t PackKey(float weight, int index) {
  return (uint64_t{std::bit_cast<uint32_t>(weight)} << 32) | static_cast<uint32_t>(index);
}

// The weight of a PackKey.
float KeyWeight(uint64_t key) { return std::bit_cast<float>(static_cast<uint32_t>(key >> 32)); }

// `buffer` holding `size` copies of `fill`: a workspace buffer, reused from call to call, so the
// hot paths allocate only while a buffer grows.
template <typename T>
std::vector<T>& Fill(std::vector<T>& buffer, size_t size, T fill = T()) {
  buffer.assign(size, fill);
  return buffer;
}

// Sorts `items` ascending by `less` with an insertion sort: linear when they are nearly sorted.
template <typename T, typename Less>
void InsertionSort(absl::Span<T> items, Less less) {
  for (size_t i = 1; i < items.size(); ++i) {
    const T item = items[i];
    size_t j = i;
    for (; j > 0 && less(item, items[j - 1]); --j) items[j] = items[j - 1];
    items[j] = item;
  }
}

// Below this many keys std::sort beats SortKeys' bucketing.
constexpr size_t kMinBucketSortKeys = 64;

// SortKeys falls back to std::sort when a bucket holds more keys than this.
constexpr uint32_t kMaxBucketKeys = 32;

// Sorts `keys` (distinct) ascending. From kMinBucketSortKeys keys on: one counting pass into about
// 2n buckets by the upper 32 bits, coarsened by a shift (so bucket order is key order), then an
// insertion sort that only has to order each bucket; std::sort when a bucket is large.
void SortKeys(std::vector<uint64_t>& keys, PackingWorkspace::Buffers& ws) {
  const size_t n = keys.size();
  if (n < kMinBucketSortKeys) {
    std::sort(keys.begin(), keys.end());
    return;
  }
  uint32_t lo = std::numeric_limits<uint32_t>::max(), hi = 0;
  for (const uint64_t key : keys) {
    lo = std::min(lo, static_cast<uint32_t>(key >> 32));
    hi = std::max(hi, static_cast<uint32_t>(key >> 32));
  }
  const uint32_t num_buckets = 2 * std::bit_ceil(static_cast<uint32_t>(n));
  int shift = 0;
  while (((hi - lo) >> shift) >= num_buckets) ++shift;
  // start[b + 1] counts bucket b, then becomes where bucket b + 1 starts.
  std::vector<uint32_t>& start = Fill(ws.bucket_starts, num_buckets + 1);
  std::vector<uint32_t>& bucket = Fill(ws.buckets, n);
  for (size_t i = 0; i < n; ++i) {
    bucket[i] = (static_cast<uint32_t>(keys[i] >> 32) - lo) >> shift;
    ++start[bucket[i] + 1];
  }
  uint32_t largest = 0;
  for (uint32_t b = 1; b <= num_buckets; ++b) {
    largest = std::max(largest, start[b]);
    start[b] += start[b - 1];
  }
  if (largest > kMaxBucketKeys) {
    std::sort(keys.begin(), keys.end());
    return;
  }
  std::vector<uint64_t>& sorted = Fill(ws.sort_buffer, n);
  for (size_t i = 0; i < n; ++i) sorted[start[bucket[i]]++] = keys[i];
  InsertionSort(absl::Span<uint64_t>(sorted), std::less<uint64_t>());
  keys.swap(sorted);
}

// The HeaviestFirst key of item `index` of weight `weight`: keys ascend heaviest first, equal
// weights in index order. Weights are non-negative, so their bit patterns order like their values.
uint64_t SortKey(float weight, int index) {
  return (uint64_t{~std::bit_cast<uint32_t>(weight)} << 32) | static_cast<uint32_t>(index);
}

// The item of a SortKey.
int KeyItem(uint64_t key) { return static_cast<int>(key & 0xffffffffu); }

// BalancedPacking after its sort, into `result` (reusing its storage), where that needs no search:
// when each pack holds one item, or pairs whose first num_packs items are all positive. `sorted`
// holds the SortKeys of all items of `weights`, ascending. Returns whether it packed.
bool PackWithoutSearch(absl::Span<const uint64_t> sorted, absl::Span<const float> weights,
                       int num_packs, Packing& result) {
  const int n = static_cast<int>(weights.size());
  const int per_pack = n / num_packs;
  if (per_pack == 1) {
    result.pack.resize(n);
    result.rank.assign(n, 0);
    std::iota(result.pack.begin(), result.pack.end(), 0);
    return true;
  }
  const auto item_at = [&](int i) { return KeyItem(sorted[i]); };
  if (per_pack != 2 || !(weights[item_at(num_packs - 1)] > 0.0f)) return false;
  // In O(n) after the sort: each of the first num_packs items finds an empty pack lighter than
  // every used one, so item i goes to pack i. Then pack p holds weight x_p, non-increasing in p,
  // and each further item fills the lightest pack with room, lowest index among equals: blocks of
  // equal x_p from the last, each in ascending p.
  result.pack.resize(n);
  result.rank.assign(n, 0);
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
  return true;
}

// BalancedPacking after its sort with a tournament tree over the packs: leaf p (at size + p) holds
// pack p's key, (weight, index) packed into 64 bits, or kFull once the pack is full (also for the
// padding leaves); each inner node holds the smaller key of its two children, so the root is the
// lightest pack with room, lowest index among equals, and taking it costs one walk up the tree.
// Placed one item at a time, so that several packings can take turns.
class TreePacker {
 public:
  static constexpr uint64_t kFull = ~uint64_t{0};

  // Tree leaves for num_packs packs (a power of two).
  static int TreeSize(int num_packs) {
    return static_cast<int>(std::bit_ceil(static_cast<unsigned>(num_packs)));
  }

  // Starts packing the items of `sorted` (SortKeys, ascending) into `result`, with tree[2 *
  // TreeSize(num_packs)] and pack_items[num_packs] as buffers. When the first num_packs items are
  // all positive, each finds an empty pack lighter than every used one, so item i goes to pack i:
  // those start the tree. Otherwise Place them as the rest.
  TreePacker(absl::Span<const uint64_t> sorted, absl::Span<const float> weights, int num_packs,
             Packing& result, uint64_t* tree, int* pack_items)
      : sorted_(sorted.data()),
        weights_(weights.data()),
        pack_(result.pack.data()),
        rank_(result.rank.data()),
        tree_(tree),
        pack_items_(pack_items),
        size_(TreeSize(num_packs)),
        per_pack_(static_cast<int>(weights.size()) / num_packs) {
    const bool first_fill = weights[KeyItem(sorted[num_packs - 1])] > 0.0f;
    std::fill(tree_, tree_ + 2 * size_, kFull);
    for (int p = 0; p < num_packs; ++p) {
      float load = 0.0f;
      pack_items_[p] = 0;
      if (first_fill) {
        const int item = KeyItem(sorted[p]);
        pack_[item] = p;
        rank_[item] = 0;
        pack_items_[p] = 1;
        load = weights[item];
      }
      tree_[size_ + p] = PackKey(load, p);
    }
    for (int node = size_ - 1; node > 0; --node) {
      tree_[node] = std::min(tree_[2 * node], tree_[2 * node + 1]);
    }
    top_ = tree_[1];
    if (!first_fill) {
      for (int i = 0; i < num_packs; ++i) Place(i);
    }
  }

  // Places the item at sorted position i; each position once, in ascending order.
  // The walk up keeps the new minimum in a register rather than reloading what it just stored,
  // and hands the root to the next item the same way: a packing is bound by that chain.
  void Place(int i) {
    const int item = KeyItem(sorted_[i]);
    const int best = static_cast<int>(top_ & 0xffffffffu);
    pack_[item] = best;
    const int count = pack_items_[best];
    rank_[item] = count;
    pack_items_[best] = count + 1;
    // kFull once the pack is full, without a branch (which would mispredict each time).
    int node = size_ + best;
    uint64_t key = PackKey(KeyWeight(top_) + weights_[item], best) |
                   (uint64_t{0} - static_cast<uint64_t>(count + 1 >= per_pack_));
    tree_[node] = key;
    for (; node > 1; node >>= 1) {
      key = std::min(key, tree_[node ^ 1]);
      tree_[node >> 1] = key;
    }
    top_ = key;
  }

 private:
  const uint64_t* sorted_;
  const float* weights_;
  int* pack_;
  int* rank_;
  uint64_t* tree_;
  int* pack_items_;
  int size_;
  int per_pack_;
  uint64_t top_;
};

// BalancedPacking after its sort, for several problems of n items each: problem k packs the
// items of weights[k] in the order sorted[k] into results[k] (reusing its storage). The problems
// that need a search take turns item by item, so that their chains overlap.
void PackHeaviestFirst(absl::Span<const absl::Span<const uint64_t>> sorted,
                       absl::Span<const absl::Span<const float>> weights, int num_packs,
                       absl::Span<Packing* const> results, PackingWorkspace::Buffers& ws) {
  const int num_problems = static_cast<int>(results.size());
  const int n = static_cast<int>(weights[0].size());
  const int tree_size = 2 * TreePacker::TreeSize(num_packs);
  std::vector<uint64_t>& trees = Fill(ws.tree, size_t{1} * num_problems * tree_size);
  std::vector<int>& pack_items = Fill(ws.pack_items, size_t{1} * num_problems * num_packs);
  std::vector<TreePacker>& packers = ws.packers;
  packers.clear();
  for (int k = 0; k < num_problems; ++k) {
    if (PackWithoutSearch(sorted[k], weights[k], num_packs, *results[k])) continue;
    results[k]->pack.resize(n);
    results[k]->rank.resize(n);
    packers.emplace_back(sorted[k], weights[k], num_packs, *results[k], &trees[k * tree_size],
                         &pack_items[k * num_packs]);
  }
  for (int i = num_packs; i < n; ++i) {
    for (TreePacker& packer : packers) packer.Place(i);
  }
}

// PackHeaviestFirst for one problem.
void PackHeaviestFirst(absl::Span<const uint64_t> sorted, absl::Span<const float> weights,
                       int num_packs, Packing& result, PackingWorkspace::Buffers& ws) {
  Packing* const results[] = {&result};
  PackHeaviestFirst({&sorted, 1}, {&weights, 1}, num_packs, results, ws);
}

// Sets `result` (reusing its storage) to: replica i < num_log is expert i; the rest unassigned.
void OneReplicaEach(int num_log, int num_phy, Replication& result) {
  result.phy2log.resize(num_phy);
  result.rank.resize(num_phy);
  result.logcnt.resize(num_log);
  for (int e = 0; e < num_log; ++e) {
    result.phy2log[e] = e;
    result.rank[e] = 0;
    result.logcnt[e] = 1;
  }
}

// DeepSeek's greedy replication from replica num_log on: `heap` is a max-heap of PackKey(weight /
// count, ~expert) over the experts that may still get a replica, so its top is the reference's
// first maximum. Experts leave it at max_replicas; when none is left, the cap is lifted.
void AddReplicas(absl::Span<const float> weights, int max_replicas, std::vector<uint64_t>& heap,
                 Replication& result) {
  const int num_log = static_cast<int>(weights.size());
  const auto key = [&](int expert) {
    return PackKey(weights[expert] / static_cast<float>(result.logcnt[expert]), ~expert);
  };
  for (int i = num_log; i < static_cast<int>(result.phy2log.size()); ++i) {
    if (heap.empty()) {
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
}

// Restores the ascending order of `members` after members[at] changed.
void Resettle(absl::Span<Member> members, int at) {
  for (; at > 0 && members[at] < members[at - 1]; --at) std::swap(members[at], members[at - 1]);
  for (; at + 1 < static_cast<int>(members.size()) && members[at + 1] < members[at]; ++at) {
    std::swap(members[at], members[at + 1]);
  }
}

}  // namespace

PackingWorkspace::PackingWorkspace() : buffers_(std::make_unique<Buffers>()) {}
PackingWorkspace::~PackingWorkspace() = default;
PackingWorkspace::PackingWorkspace(PackingWorkspace&&) noexcept = default;
PackingWorkspace& PackingWorkspace::operator=(PackingWorkspace&&) noexcept = default;

Packing BalancedPacking(absl::Span<const float> weights, int num_packs,
                        PackingWorkspace& workspace) {
  PackingWorkspace::Buffers& ws = workspace.buffers();
  const int n = static_cast<int>(weights.size());
  DSMOE_DCHECK(num_packs > 0 && n % num_packs == 0);
  std::vector<uint64_t>& keys = Fill(ws.sort_keys, n);
  for (int i = 0; i < n; ++i) keys[i] = SortKey(weights[i], i);
  SortKeys(keys, ws);
  Packing result;
  PackHeaviestFirst(keys, weights, num_packs, result, ws);
  return result;
}

void HeaviestFirst(absl::Span<const float> weights, absl::Span<int> order,
                   PackingWorkspace& workspace) {
  PackingWorkspace::Buffers& ws = workspace.buffers();
  DSMOE_DCHECK(order.size() == weights.size());
  std::vector<uint64_t>& keys = Fill(ws.sort_keys, weights.size());
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = SortKey(weights[i], static_cast<int>(i));
  SortKeys(keys, ws);
  std::transform(keys.begin(), keys.end(), order.begin(), KeyItem);
}

Replication ReplicateExperts(absl::Span<const float> weights, int num_phy, int max_replicas) {
  const int num_log = static_cast<int>(weights.size());
  DSMOE_DCHECK(num_log > 0 && num_phy >= num_log && max_replicas > 0);
  Replication result;
  OneReplicaEach(num_log, num_phy, result);
  std::vector<uint64_t> heap;
  heap.reserve(num_log);
  for (int e = 0; e < num_log; ++e) {
    if (max_replicas > 1) heap.push_back(PackKey(weights[e], ~e));
  }
  std::make_heap(heap.begin(), heap.end());
  AddReplicas(weights, max_replicas, heap, result);
  return result;
}

void ReplicateForPacking(absl::Span<const float> weights, absl::Span<const int> order, int num_phy,
                         int max_replicas, ReplicatedPacking& result, PackingWorkspace& workspace) {
  PackingWorkspace::Buffers& ws = workspace.buffers();
  const int num_log = static_cast<int>(weights.size());
  DSMOE_DCHECK(num_log > 0 && num_phy >= num_log);
  DSMOE_DCHECK(order.size() == weights.size() && max_replicas > 0);
  Replication& rep = result.rep;
  OneReplicaEach(num_log, num_phy, rep);
  // An expert after the first extra + 1 in `order` never gets a replica: to be the first maximum
  // it would need all extra + 1 experts before it (as heavy or heavier, lower index on ties) to
  // have had one already, or to have left the heap at max_replicas after max_replicas - 1 of
  // them. Those candidates, in order, are descending keys: already a max-heap. With
  // max_replicas == 1 the heap starts empty, and AddReplicas lifts the cap for all experts.
  const int extra = num_phy - num_log;
  std::vector<uint64_t>& heap =
      Fill(ws.heap, max_replicas > 1 ? static_cast<size_t>(std::min(extra + 1, num_log)) : 0);
  for (size_t i = 0; i < heap.size(); ++i) heap[i] = PackKey(weights[order[i]], ~order[i]);
  AddReplicas(weights, max_replicas, heap, rep);

  // The replicated experts, each once: the experts of the replicas of rank 1.
  std::vector<int>& replicated = Fill(ws.replicated, 0);
  for (int p = num_log; p < num_phy; ++p) {
    if (rep.rank[p] == 1) replicated.push_back(rep.phy2log[p]);
  }
  // Each replica's load, weight / count in float32; x / 1 is x, so only replicated experts divide.
  std::vector<float>& replica_loads = result.replica_loads;
  replica_loads.resize(num_phy);
  std::copy(weights.begin(), weights.end(), replica_loads.begin());
  for (const int e : replicated) replica_loads[e] = weights[e] / static_cast<float>(rep.logcnt[e]);
  for (int p = num_log; p < num_phy; ++p) replica_loads[p] = replica_loads[rep.phy2log[p]];
  // The replicas sorted heaviest first: those of experts with one replica keep `order`; merge in
  // those of the replicated experts (replica e < num_log and those from num_log on), sorted on
  // their own.
  std::vector<uint64_t>& split = Fill(ws.split, 0);
  for (const int e : replicated) split.push_back(SortKey(replica_loads[e], e));
  for (int p = num_log; p < num_phy; ++p) split.push_back(SortKey(replica_loads[p], p));
  std::sort(split.begin(), split.end());
  std::vector<uint64_t>& sorted = result.sorted;
  sorted.resize(num_phy);
  auto out = sorted.begin();
  auto next_split = split.begin();
  for (const int e : order) {
    if (rep.logcnt[e] > 1) continue;
    const uint64_t key = SortKey(replica_loads[e], e);
    while (next_split != split.end() && *next_split < key) *out++ = *next_split++;
    *out++ = key;
  }
  std::copy(next_split, split.end(), out);
}

void PackReplicated(absl::Span<ReplicatedPacking> plans, int num_packs,
                    PackingWorkspace& workspace) {
  PackingWorkspace::Buffers& ws = workspace.buffers();
  DSMOE_DCHECK(!plans.empty() && num_packs > 0);
  std::vector<absl::Span<const uint64_t>>& sorted = ws.sorted;
  std::vector<absl::Span<const float>>& weights = ws.weights;
  std::vector<Packing*>& results = ws.results;
  sorted.clear();
  weights.clear();
  results.clear();
  for (ReplicatedPacking& plan : plans) {
    DSMOE_DCHECK(plan.sorted.size() == plans[0].sorted.size() &&
                 plan.sorted.size() % num_packs == 0);
    sorted.push_back(plan.sorted);
    weights.push_back(plan.replica_loads);
    results.push_back(&plan.packing);
  }
  PackHeaviestFirst(sorted, weights, num_packs, results, ws);
}

void ReplicateAndPack(absl::Span<const float> weights, absl::Span<const int> order, int num_phy,
                      int num_packs, int max_replicas, ReplicatedPacking& result,
                      PackingWorkspace& workspace) {
  DSMOE_DCHECK(num_packs > 0 && num_phy % num_packs == 0);
  ReplicateForPacking(weights, order, num_phy, max_replicas, result, workspace);
  PackReplicated({&result, 1}, num_packs, workspace);
}

void RefineBySwaps(absl::Span<const double> weights, int num_packs, int max_swaps, Packing& packing,
                   PackingWorkspace& workspace) {
  PackingWorkspace::Buffers& ws = workspace.buffers();
  const int n = static_cast<int>(weights.size());
  const int per_pack = n / num_packs;
  // Each pack's (weight, item), lightest first, in one array: pack p's at [p * per_pack, ...).
  // Placed by reversed rank first: BalancedPacking's ranks are heaviest first, so the sort that
  // follows has little left to do.
  std::vector<Member>& members = Fill(ws.members, n);
  std::vector<double>& load = Fill(ws.pack_loads, num_packs, 0.0);
  for (int i = 0; i < n; ++i) {
    const int p = packing.pack[i];
    DSMOE_DCHECK(packing.rank[i] >= 0 && packing.rank[i] < per_pack);
    members[p * per_pack + per_pack - 1 - packing.rank[i]] = {weights[i], i};
    load[p] += weights[i];
  }
  const auto pack_members = [&](int p) {
    return absl::Span<Member>(members).subspan(p * per_pack, per_pack);
  };
  // Nearly sorted, so an insertion sort is fastest for small packs; a long run of equal weights
  // arrives reversed, which would make it quadratic in large ones.
  for (int p = 0; p < num_packs; ++p) {
    const absl::Span<Member> pack = pack_members(p);
    if (per_pack <= kMaxInsertionSort) {
      InsertionSort(pack, std::less<Member>());
    } else {
      std::sort(pack.begin(), pack.end());
    }
  }
  // The packs lightest first; after a swap only two loads change, so it stays nearly sorted.
  std::vector<int>& by_load = Fill(ws.by_load, num_packs);
  std::iota(by_load.begin(), by_load.end(), 0);
  const auto lighter = [&](int p, int q) { return load[p] < load[q]; };
  std::ranges::sort(by_load, lighter);
  const double mean = std::accumulate(load.begin(), load.end(), 0.0) / num_packs;
  max_swaps =
      static_cast<int>(std::min<int64_t>(max_swaps, std::max<int64_t>(1, kMaxRefineWork / n)));
  for (int swap = 0; swap < max_swaps; ++swap) {
    const int heavy = static_cast<int>(std::max_element(load.begin(), load.end()) - load.begin());
    if (load[heavy] <= mean * (1.0 + kBalancedEnough)) return;
    // The swap that brings the heavy pack's load down the most (the first in pack, a, b order
    // among equals): moving delta = w_a - w_b from the heavy pack to another with load gap g
    // helps when 0 < delta < g and is best near g / 2, so for each a only the two b around
    // w_a - g / 2 matter. That point rises with w_a, so one pointer walks each other pack once.
    // No swap with a pack takes the heavy one below the midpoint of their loads, so packs are
    // visited lightest first and the walk stops at the first midpoint (less a margin far above
    // rounding) beyond the best result found.
    const absl::Span<const Member> ours = pack_members(heavy);
    double best_new_max = load[heavy];
    int best_pack = -1, best_a = -1, best_b = -1;
    for (const int other : by_load) {
      const double gap = load[heavy] - load[other];
      if (other == heavy || gap <= 0.0) continue;
      if (load[other] + gap / 2 - kRoundingMargin * load[heavy] > best_new_max) break;
      const absl::Span<const Member> theirs = pack_members(other);
      // Only a with theirs[0] < w_a < theirs[last] + gap can have 0 < delta < gap.
      const double lightest_b = theirs.front().first;
      const double a_limit = theirs.back().first + gap;
      int at = 0;  // First b with w_b >= w_a - gap / 2.
      for (int a = 0; a < per_pack; ++a) {
        const double w_a = ours[a].first;
        if (w_a <= lightest_b) continue;
        if (w_a >= a_limit) break;
        while (at < per_pack && theirs[at].first < w_a - gap / 2) ++at;
        for (int b = std::max(at - 1, 0); b <= std::min(at, per_pack - 1); ++b) {
          const double delta = w_a - theirs[b].first;
          if (delta <= 0.0 || delta >= gap) continue;
          const double new_max = std::max(load[heavy] - delta, load[other] + delta);
          if (new_max < best_new_max ||
              (new_max == best_new_max && best_pack >= 0 && other < best_pack)) {
            best_new_max = new_max;
            best_pack = other;
            best_a = a;
            best_b = b;
          }
        }
      }
    }
    if (best_pack < 0) return;
    Member& a = pack_members(heavy)[best_a];
    Member& b = pack_members(best_pack)[best_b];
    const double delta = a.first - b.first;
    load[heavy] -= delta;
    load[best_pack] += delta;
    std::swap(packing.pack[a.second], packing.pack[b.second]);
    std::swap(packing.rank[a.second], packing.rank[b.second]);
    std::swap(a, b);
    Resettle(pack_members(heavy), best_a);
    Resettle(pack_members(best_pack), best_b);
    InsertionSort(absl::Span<int>(by_load), lighter);
  }
}

}  // namespace eplb::internal
