// EPLB's entry point: from per-expert loads, decide how many replicas each logical expert gets and
// on which GPU each replica lives, for every MoE layer.
//
//   ASSIGN_OR_RETURN(eplb::Placement placement,
//                    eplb::Rebalance(loads, /*num_replicas=*/288, /*num_groups=*/8,
//                                    /*num_nodes=*/4, /*num_gpus=*/32, eplb::Policy::kRefined));
//
// When num_groups is a multiple of num_nodes the hierarchical policy runs: expert groups are
// packed onto nodes, experts replicated inside each node, and each node's replicas packed onto its
// GPUs. Otherwise the global policy runs: the same with one group and one node. See docs/eplb.md.
#ifndef EPLB_REBALANCE_H_
#define EPLB_REBALANCE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/thread_pool.h"
#include "eplb/matrix.h"
#include "eplb/placement.h"

namespace eplb {

enum class Policy {
  // DeepSeek's published algorithm (EPLB's eplb.py), bit for bit: loads are converted to float32,
  // packings are greedy heaviest-first, replication greedy by highest load per replica.
  kDeepSeek,
  // Ours: DeepSeek's placement, improved node by node (heaviest GPU first) by swap refinement of
  // the replica-to-GPU packing and by capping an expert's replicas at its node's GPU count, and
  // tried on a swap-refined group-to-node packing; per layer the candidate with the lowest
  // maximum GPU load wins, DeepSeek's on ties. Never worse than kDeepSeek on any layer; keeps
  // node locality (each group's replicas stay on one node). See docs/eplb.md.
  kRefined,
};

inline constexpr Policy kDefaultPolicy = Policy::kRefined;

// "deepseek" or "refined".
absl::string_view PolicyName(Policy policy);

// The policy named `name` (as PolicyName spells it); InvalidArgument naming the choices otherwise.
absl::StatusOr<Policy> ParsePolicy(absl::string_view name);

// Places `loads` [layers, num_experts] (tokens routed to each logical expert; any non-negative
// finite values) on num_gpus GPUs over num_nodes nodes with num_replicas replicas per layer.
// Returns the placement, or InvalidArgument naming the bad argument when: loads is empty; a load
// is negative, NaN, infinite or above FLT_MAX; a layer's loads sum to more than FLT_MAX / 2 (the
// policies sum them in float32, as the reference does); a count is not positive; num_groups does
// not divide num_experts; num_nodes does not divide num_gpus; num_gpus does not divide
// num_replicas; num_replicas < num_experts; or phy2log or log2phy would exceed 2^24 entries.
// Thread-safe; the caller owns the result. Runs in O(layers * num_replicas * log num_experts) plus
// refinement swaps; when `pool` is given (not owned; it must outlive the call), layers are placed
// in parallel on it, with the same result. Must not be called from inside a task of `pool`.
// Reentrant: its buffers belong to the call (one workspace per chunk of layers, released when it
// returns), so concurrent calls from any threads do not share state.
absl::StatusOr<Placement> Rebalance(const Matrix<double>& loads, int num_replicas, int num_groups,
                                    int num_nodes, int num_gpus, Policy policy = kDefaultPolicy,
                                    core::ThreadPool* pool = nullptr);

}  // namespace eplb

#endif  // EPLB_REBALANCE_H_
