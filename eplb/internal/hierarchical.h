// DeepSeek's hierarchical rebalance of one layer (rebalance_experts_hierarchical in EPLB's
// eplb.py) in its two parts, groups to nodes and then replicas within nodes, each with our policy's
// improvements as an option. The global policy is this with one group and one node.
#ifndef EPLB_INTERNAL_HIERARCHICAL_H_
#define EPLB_INTERNAL_HIERARCHICAL_H_

#include <vector>

#include "absl/types/span.h"
#include "eplb/internal/packing.h"

namespace eplb::internal {

struct LayerShape {
  int num_replicas = 0;
  int num_groups = 0;
  int num_nodes = 0;
  int num_gpus = 0;
};

// One layer's placement: phy2log and the replica rank of each replica ([num_replicas] each) and
// the replica count of each expert ([num_experts]).
struct LayerPlacement {
  std::vector<int> phy2log;
  std::vector<int> phyrank;
  std::vector<int> logcnt;
};

// The buffers PackGroups and PlaceNodes reuse from layer to layer, so that the layers after the
// first allocate only while a buffer grows: one per thread of work, owned by the caller (Rebalance
// keeps one per chunk of layers), released with it. Serves one call at a time.
struct PlaceWorkspace {
  PackingWorkspace packing;
  std::vector<float> group_loads;  // PackGroups.
  std::vector<double> group_weights;
  std::vector<int> mlog2log;  // PlaceNodes.
  std::vector<float> mlog_loads;
  std::vector<int> node_order;
  std::vector<ReplicatedPacking> plans;
  ReplicatedPacking capped;
  std::vector<double> node_max;
  std::vector<char> done;
  std::vector<double> replica_loads;  // ReplicaLoads.
  std::vector<double> gpu_loads;      // MaxGpuLoad.
  std::vector<double> bound_loads;    // SharedGpuLowerBound.
};

// Step 1: packs the expert groups (sums of group_size consecutive float32 loads) onto the nodes
// with BalancedPacking and returns that packing; when `refined` is not null, also stores there
// that packing improved by swaps (each group stays whole).
// Preconditions (validated by the caller): loads.size() % num_groups == 0,
// num_groups % num_nodes == 0, loads finite and non-negative.
Packing PackGroups(absl::Span<const float> loads, const LayerShape& shape, Packing* refined,
                   PlaceWorkspace& workspace);

// Steps 2 and 3 for the group packing `groups`: replicates each node's experts into its replicas
// and packs them onto its GPUs, as the reference does, into `placement` (reusing its storage);
// with PackGroups's result the placement is bit-identical to DeepSeek's. When `improved` is not
// null, also stores there our improvement of it: nodes are taken heaviest GPU first, and each gets
// the best (lowest heaviest GPU) of its plan, its plan with the GPU packing swap-refined, and, when
// an expert has more replicas than the node has GPUs, replication capped at that many, packed and
// refined; this stops once the heaviest node is one already improved. Group-to-node assignment is
// kept. Preconditions: those of PackGroups, and num_gpus % num_nodes == 0, num_replicas % num_gpus
// == 0, num_replicas >= loads.size() > 0.
void PlaceNodes(absl::Span<const float> loads, const LayerShape& shape, const Packing& groups,
                LayerPlacement& placement, LayerPlacement* improved, PlaceWorkspace& workspace);

}  // namespace eplb::internal

#endif  // EPLB_INTERNAL_HIERARCHICAL_H_
