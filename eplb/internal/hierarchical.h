// DeepSeek's hierarchical rebalance of one layer (rebalance_experts_hierarchical in EPLB's
// eplb.py), with optional swap refinement of its two packing steps for our own policy.
// The global policy is this with one group and one node.
#ifndef EPLB_INTERNAL_HIERARCHICAL_H_
#define EPLB_INTERNAL_HIERARCHICAL_H_

#include <span>
#include <vector>

namespace eplb::internal {

struct LayerShape {
  int num_replicas = 0;
  int num_groups = 0;
  int num_nodes = 0;
  int num_gpus = 0;
};

struct LayerOptions {
  // Refine the packing of expert groups onto nodes by swaps (keeps every group on one node).
  bool refine_groups = false;
  // Refine each node's packing of replicas onto its GPUs by swaps.
  bool refine_gpus = false;
};

// One layer's placement: phy2log and the replica rank of each replica ([num_replicas] each) and
// the replica count of each expert ([num_experts]).
struct LayerPlacement {
  std::vector<int> phy2log;
  std::vector<int> phyrank;
  std::vector<int> logcnt;
};

// Places one layer whose expert loads are `loads` (already float32, as the reference converts
// them). With default options the result is bit-identical to the reference.
// Preconditions (validated by the caller): loads.size() % num_groups == 0,
// num_groups % num_nodes == 0, num_gpus % num_nodes == 0, num_replicas % num_gpus == 0,
// num_replicas >= loads.size() > 0, loads finite and non-negative.
LayerPlacement PlaceLayer(std::span<const float> loads, const LayerShape& shape,
                          const LayerOptions& options);

}  // namespace eplb::internal

#endif  // EPLB_INTERNAL_HIERARCHICAL_H_
