// The building blocks of EPLB's policies, for one layer at a time: DeepSeek's balanced packing and
// greedy replication (bit-exact in float32, with the reference's tie-breaking), and the swap
// refinement our own policy adds on top of a packing.
#ifndef EPLB_INTERNAL_PACKING_H_
#define EPLB_INTERNAL_PACKING_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "absl/types/span.h"

namespace eplb::internal {

// The buffers the functions below reuse from call to call, so that their hot paths allocate only
// while a buffer grows: one per thread of work, owned by the caller, and released with it. A
// workspace serves one call at a time (not thread-safe); the functions are reentrant otherwise.
// Movable, not copyable.
class PackingWorkspace {
 public:
  PackingWorkspace();
  ~PackingWorkspace();
  PackingWorkspace(PackingWorkspace&&) noexcept;
  PackingWorkspace& operator=(PackingWorkspace&&) noexcept;

  struct Buffers;  // Private to packing.cc.
  Buffers& buffers() { return *buffers_; }

 private:
  std::unique_ptr<Buffers> buffers_;
};

// Assignment of n items to packs: item i goes to pack[i] at position rank[i] inside it.
struct Packing {
  std::vector<int> pack;  // [n]
  std::vector<int> rank;  // [n]
};

// DeepSeek's balanced_packing: packs n = weights.size() items into num_packs packs of exactly
// n / num_packs items. Items are visited heaviest first (stable descending sort, so equal weights
// keep index order); each goes to the lightest pack that still has room (lowest index on ties).
// Pack weights accumulate in float32. When each pack holds one item, item i goes to pack i.
// Precondition: num_packs > 0 and n % num_packs == 0.
Packing BalancedPacking(absl::Span<const float> weights, int num_packs,
                        PackingWorkspace& workspace);

// Result of replicating num_log experts into num_phy replicas.
struct Replication {
  std::vector<int> phy2log;  // [num_phy]: the expert of each replica.
  std::vector<int> rank;     // [num_phy]: replica number of each replica within its expert.
  std::vector<int> logcnt;   // [num_log]: replica count of each expert.
};

// DeepSeek's replicate_experts: replica i < num_log is expert i; each further replica goes to the
// expert with the highest float32 weight / count (lowest index on ties). O(num_phy log num_log).
// With max_replicas below num_phy, experts stop receiving replicas at max_replicas until every
// expert has that many (our policy: replicas of one expert beyond the GPUs it can spread over
// cannot lower the load of the GPU that holds two of them). The default is the reference.
// Preconditions: num_phy >= weights.size() > 0, max_replicas > 0.
Replication ReplicateExperts(absl::Span<const float> weights, int num_phy,
                             int max_replicas = std::numeric_limits<int>::max());

// Stores in `order` the items of `weights` heaviest first, equal weights in index order
// (BalancedPacking's visiting order). Preconditions: order.size() == weights.size(); weights
// non-negative, with no -0.
void HeaviestFirst(absl::Span<const float> weights, absl::Span<int> order,
                   PackingWorkspace& workspace);

struct ReplicatedPacking {
  Replication rep;
  Packing packing;  // Of the replicas (weight / count each) into the packs.
  // Between ReplicateForPacking and PackReplicated: each replica's float32 load, and the replicas
  // heaviest first (as sort keys).
  std::vector<float> replica_loads;
  std::vector<uint64_t> sorted;
};

// Stores in `out` (reusing its storage) ReplicateExperts(weights, num_phy, max_replicas)
// followed by BalancedPacking of the replicas' loads (weight / count in float32) into num_packs,
// with the same result, faster: given order = HeaviestFirst(weights), only the first
// num_phy - num_log + 1 experts in it enter the replication heap, and the replicas are sorted by
// merging rather than from scratch.
// Preconditions: those of ReplicateExperts and BalancedPacking;
// order == HeaviestFirst(weights).
void ReplicateAndPack(absl::Span<const float> weights, absl::Span<const int> order, int num_phy,
                      int num_packs, int max_replicas, ReplicatedPacking& out,
                      PackingWorkspace& workspace);

// ReplicateAndPack in two halves, so that several problems of the same size can be packed side by
// side: ReplicateForPacking sets out.rep, out.replica_loads and out.sorted; PackReplicated then
// sets each plan's packing. Packing is a chain of dependent steps per problem; interleaving the
// problems' chains lets the processor overlap them. The results are those of ReplicateAndPack.
// Preconditions: those of ReplicateAndPack; the plans of one PackReplicated call have equal
// replica counts, divisible by num_packs.
void ReplicateForPacking(absl::Span<const float> weights, absl::Span<const int> order, int num_phy,
                         int max_replicas, ReplicatedPacking& out, PackingWorkspace& workspace);
void PackReplicated(absl::Span<ReplicatedPacking> plans, int num_packs,
                    PackingWorkspace& workspace);

// Improves `packing` of `weights` (all packs hold the same number of items) by swapping items
// between the heaviest pack and another one while that lowers the heaviest pack's load; stops when
// no swap helps, when the heaviest pack is within 0.1% of the mean, or after max_swaps swaps, but
// never more than max(1, kMaxRefineWork / n) swaps: each swap looks at O(n) items, so the work is
// bounded by O(n log n + kMaxRefineWork) whatever the size (a few milliseconds).
// Each swap strictly lowers the sum of squared pack loads, and the maximum pack load never rises.
// Ranks are swapped with the items, so each pack's ranks stay a permutation.
// Precondition: packing is a valid packing of weights into num_packs.
inline constexpr int64_t kMaxRefineWork = int64_t{1} << 22;
void RefineBySwaps(absl::Span<const double> weights, int num_packs, int max_swaps, Packing& packing,
                   PackingWorkspace& workspace);

}  // namespace eplb::internal

#endif  // EPLB_INTERNAL_PACKING_H_
