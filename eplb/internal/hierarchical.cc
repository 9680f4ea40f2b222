#include "eplb/internal/hierarchical.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

namespace eplb::internal {
namespace {

// One node's replication of its experts and packing of the replicas onto its GPUs.
using NodePlan = ReplicatedPacking;

// Relative margin, far above double rounding, by which a lower bound must exceed a load before
// the bound rules out reaching it.
constexpr double kRoundingMargin = 1e-9;

// The load each replica of `rep` carries, in double: its expert's load divided by the expert's
// replica count. Replica e < num_log is expert e, and only the experts of the replicas after
// those have more than one, so only those divide (x / 1 is x). In workspace.replica_loads, which
// the next call reuses.
absl::Span<const double> ReplicaLoads(absl::Span<const float> node_loads, const Replication& rep,
                                      PlaceWorkspace& workspace) {
  std::vector<double>& loads = workspace.replica_loads;
  const int num_log = static_cast<int>(rep.logcnt.size());
  const int num_phy = static_cast<int>(rep.phy2log.size());
  loads.resize(num_phy);
  std::copy(node_loads.begin(), node_loads.end(), loads.begin());
  for (int p = num_log; p < num_phy; ++p) {
    const int e = rep.phy2log[p];
    loads[p] = loads[e] = static_cast<double>(node_loads[e]) / rep.logcnt[e];
  }
  return loads;
}

double MaxGpuLoad(absl::Span<const float> node_loads, const NodePlan& plan, int gpus_per_node,
                  PlaceWorkspace& workspace) {
  std::vector<double>& gpu_loads = workspace.gpu_loads;
  gpu_loads.assign(gpus_per_node, 0.0);
  const absl::Span<const double> replica_loads = ReplicaLoads(node_loads, plan.rep, workspace);
  for (size_t p = 0; p < replica_loads.size(); ++p) {
    gpu_loads[plan.packing.pack[p]] += replica_loads[p];
  }
  return *std::max_element(gpu_loads.begin(), gpu_loads.end());
}

// A lower bound on the heaviest GPU of any packing of `rep`'s replicas onto gpus_per_node GPUs of
// equal replica counts, from the experts with more replicas than GPUs: one of k > gpus_per_node
// replicas of an expert of load w shares a GPU with at least m - 1 others, m = ceil(k /
// gpus_per_node), so that GPU carries at least m * w / k plus the lightest replicas that fill it.
// 0 when no expert has more replicas than GPUs.
double SharedGpuLowerBound(absl::Span<const float> node_loads, const Replication& rep,
                           int gpus_per_node, PlaceWorkspace& workspace) {
  const int per_gpu = static_cast<int>(rep.phy2log.size()) / gpus_per_node;
  double shared = 0.0;
  int shared_count = 0;
  for (size_t k = 0; k < rep.logcnt.size(); ++k) {
    const int count = rep.logcnt[k];
    if (count <= gpus_per_node) continue;
    const int m = std::min((count + gpus_per_node - 1) / gpus_per_node, per_gpu);
    const double load = m * (static_cast<double>(node_loads[k]) / count);
    if (load > shared) {
      shared = load;
      shared_count = m;
    }
  }
  if (shared_count == 0) return 0.0;
  std::vector<double>& loads = workspace.bound_loads;
  const absl::Span<const double> replica_loads = ReplicaLoads(node_loads, rep, workspace);
  loads.assign(replica_loads.begin(), replica_loads.end());
  const int fill = per_gpu - shared_count;
  std::nth_element(loads.begin(), loads.begin() + fill, loads.end());
  return std::accumulate(loads.begin(), loads.begin() + fill, shared);
}

// Swap-refines the GPU packing of `plan`. With two or fewer replicas per GPU the greedy packing
// is already optimal (it pairs the i-th heaviest replica with the i-th lightest): nothing to do.
void Refine(absl::Span<const float> node_loads, int gpus_per_node, NodePlan& plan,
            PlaceWorkspace& workspace) {
  const int num_replicas = static_cast<int>(plan.rep.phy2log.size());
  if (num_replicas <= 2 * gpus_per_node) return;
  RefineBySwaps(ReplicaLoads(node_loads, plan.rep, workspace), gpus_per_node,
                /*max_swaps=*/num_replicas, plan.packing, workspace.packing);
}

// Writes one node's replicas and replica counts into `placement`: the node's replica p lands at
// its GPU's slot for its rank, and its node-local expert maps back to a logical one through
// mlog2log.
void EmitNode(const NodePlan& plan, int replicas_per_gpu, int node, int mlog_base,
              const std::vector<int>& mlog2log, LayerPlacement& placement) {
  const int replicas_per_node = static_cast<int>(plan.rep.phy2log.size());
  const int phy_base = node * replicas_per_node;
  for (int p = 0; p < replicas_per_node; ++p) {
    const int q = phy_base + plan.packing.pack[p] * replicas_per_gpu + plan.packing.rank[p];
    placement.phy2log[q] = mlog2log[mlog_base + plan.rep.phy2log[p]];
    placement.phyrank[q] = plan.rep.rank[p];
  }
  for (size_t e = 0; e < plan.rep.logcnt.size(); ++e) {
    placement.logcnt[mlog2log[mlog_base + e]] = plan.rep.logcnt[e];
  }
}

// The largest replica count of an expert in `rep`: one more than the largest rank of the replicas
// after the first one of each expert (replica e < num_log has rank 0).
int MaxReplicaCount(const Replication& rep) {
  int max_rank = 0;
  for (size_t p = rep.logcnt.size(); p < rep.rank.size(); ++p) {
    max_rank = std::max(max_rank, rep.rank[p]);
  }
  return max_rank + 1;
}

}  // namespace

Packing PackGroups(absl::Span<const float> loads, const LayerShape& shape, Packing* refined,
                   PlaceWorkspace& workspace) {
  const int group_size = static_cast<int>(loads.size()) / shape.num_groups;
  std::vector<float>& group_load = workspace.group_loads;
  group_load.assign(shape.num_groups, 0.0f);
  for (int g = 0; g < shape.num_groups; ++g) {
    for (int j = 0; j < group_size; ++j) group_load[g] += loads[g * group_size + j];
  }
  Packing groups = BalancedPacking(group_load, shape.num_nodes, workspace.packing);
  if (refined != nullptr) {
    *refined = groups;
    std::vector<double>& weights = workspace.group_weights;
    weights.assign(group_load.begin(), group_load.end());
    RefineBySwaps(weights, shape.num_nodes, /*max_swaps=*/shape.num_groups, *refined,
                  workspace.packing);
  }
  return groups;
}

void PlaceNodes(absl::Span<const float> loads, const LayerShape& shape, const Packing& groups,
                LayerPlacement& placement, LayerPlacement* improved, PlaceWorkspace& workspace) {
  const int num_experts = static_cast<int>(loads.size());
  const int group_size = num_experts / shape.num_groups;
  const int groups_per_node = shape.num_groups / shape.num_nodes;
  const int experts_per_node = num_experts / shape.num_nodes;
  const int replicas_per_node = shape.num_replicas / shape.num_nodes;
  const int gpus_per_node = shape.num_gpus / shape.num_nodes;
  const int replicas_per_gpu = shape.num_replicas / shape.num_gpus;
  PlaceWorkspace& scratch = workspace;

  // mlog2log maps an expert's "node-major" index (node, then group within node, then its index
  // in the group) to the expert.
  std::vector<int>& mlog2log = scratch.mlog2log;
  std::vector<float>& mlog_loads = scratch.mlog_loads;  // Node n's at [n * experts_per_node, ...).
  mlog2log.resize(num_experts);
  mlog_loads.resize(num_experts);
  for (int g = 0; g < shape.num_groups; ++g) {
    const int mlog_base = (groups.pack[g] * groups_per_node + groups.rank[g]) * group_size;
    for (int j = 0; j < group_size; ++j) {
      const int e = g * group_size + j;
      mlog2log[mlog_base + j] = e;
      mlog_loads[mlog_base + j] = loads[e];
    }
  }
  const auto node_loads = [&](int node) {
    return absl::Span<const float>(mlog_loads).subspan(node * experts_per_node, experts_per_node);
  };
  // Each node's experts heaviest first (node-local indices).
  std::vector<int>& node_order = scratch.node_order;  // Node n's at [n * experts_per_node, ...).
  node_order.resize(num_experts);
  const auto order_of = [&](int node) {
    return absl::Span<int>(node_order).subspan(node * experts_per_node, experts_per_node);
  };
  for (int node = 0; node < shape.num_nodes; ++node)
    HeaviestFirst(node_loads(node), order_of(node), workspace.packing);

  placement.phy2log.resize(shape.num_replicas);
  placement.phyrank.resize(shape.num_replicas);
  placement.logcnt.resize(num_experts);
  std::vector<NodePlan>& plans = scratch.plans;
  plans.resize(shape.num_nodes);
  for (int node = 0; node < shape.num_nodes; ++node) {
    ReplicateForPacking(node_loads(node), order_of(node), replicas_per_node,
                        /*max_replicas=*/std::numeric_limits<int>::max(), plans[node],
                        workspace.packing);
  }
  PackReplicated(absl::MakeSpan(plans), gpus_per_node,
                 workspace.packing);  // The nodes side by side.
  int max_count = 0;                  // The largest replica count of any expert.
  for (int node = 0; node < shape.num_nodes; ++node) {
    EmitNode(plans[node], replicas_per_gpu, node, node * experts_per_node, mlog2log, placement);
    if (improved != nullptr) max_count = std::max(max_count, MaxReplicaCount(plans[node].rep));
  }
  if (improved == nullptr) return;

  // Only the layer's heaviest GPU counts, so improve nodes heaviest first, until the heaviest
  // node is one already improved. A node's candidates: its plan with the packing refined, and,
  // when an expert has more replicas than the node has GPUs (so two share a GPU), replication
  // capped at one replica per GPU, packed and refined.
  *improved = placement;
  if (replicas_per_gpu <= 2 && max_count <= gpus_per_node) return;  // Nothing to improve.
  std::vector<double>& node_max = scratch.node_max;
  node_max.resize(shape.num_nodes);
  for (int node = 0; node < shape.num_nodes; ++node) {
    node_max[node] = MaxGpuLoad(node_loads(node), plans[node], gpus_per_node, workspace);
  }
  std::vector<char>& done = scratch.done;
  done.assign(shape.num_nodes, false);
  while (true) {
    const int node =
        static_cast<int>(std::max_element(node_max.begin(), node_max.end()) - node_max.begin());
    if (done[node]) break;
    done[node] = true;  // So its plan is not needed again.
    NodePlan& plan = plans[node];
    const bool over_cap = MaxReplicaCount(plan.rep) > gpus_per_node;
    // The refined plan wins ties with the capped one. Refining is skipped when a lower bound on
    // the plan's heaviest GPU (by more than rounding) shows that the capped plan wins anyway.
    const NodePlan* best = &plan;
    double best_max = node_max[node];
    NodePlan& capped = scratch.capped;
    double capped_max = std::numeric_limits<double>::infinity();
    if (over_cap) {
      ReplicateAndPack(node_loads(node), order_of(node), replicas_per_node, gpus_per_node,
                       /*max_replicas=*/gpus_per_node, capped, workspace.packing);
      Refine(node_loads(node), gpus_per_node, capped, workspace);
      capped_max = MaxGpuLoad(node_loads(node), capped, gpus_per_node, workspace);
    }
    if (!over_cap || SharedGpuLowerBound(node_loads(node), plan.rep, gpus_per_node, workspace) *
                             (1.0 - kRoundingMargin) <=
                         capped_max) {
      Refine(node_loads(node), gpus_per_node, plan, workspace);
      best_max = MaxGpuLoad(node_loads(node), plan, gpus_per_node, workspace);
    }
    if (capped_max < best_max) {
      best = &capped;
      best_max = capped_max;
    }
    if (best_max < node_max[node]) {
      node_max[node] = best_max;
      EmitNode(*best, replicas_per_gpu, node, node * experts_per_node, mlog2log, *improved);
    }
  }
}

}  // namespace eplb::internal
