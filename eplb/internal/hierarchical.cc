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

// Steps 2 and 3 of the reference for one node, whose expert loads are node_loads and
// node_order = HeaviestFirst(node_loads); with max_replicas, an expert gets at most that many
// replicas while some has fewer.
NodePlan PlanNode(std::span<const float> node_loads, std::span<const int> node_order,
                  int replicas_per_node, int gpus_per_node,
                  int max_replicas = std::numeric_limits<int>::max()) {
  return ReplicateAndPack(node_loads, node_order, replicas_per_node, gpus_per_node, max_replicas);
}

// The load a replica of an expert of load `load` with `count` replicas carries, in double. With one
// replica, the load undivided: x / 1 is x, and a division costs more than the test.
double ReplicaLoad(float load, int count) {
  return count == 1 ? load : static_cast<double>(load) / count;
}

// The load each replica of `rep` carries, in double, in a buffer of this thread that the next call
// reuses.
std::span<const double> ReplicaLoads(std::span<const float> node_loads, const Replication& rep) {
  thread_local std::vector<double> loads;
  loads.resize(rep.phy2log.size());
  for (size_t p = 0; p < loads.size(); ++p) {
    const int k = rep.phy2log[p];
    loads[p] = ReplicaLoad(node_loads[k], rep.logcnt[k]);
  }
  return loads;
}

double MaxGpuLoad(std::span<const float> node_loads, const NodePlan& plan, int gpus_per_node) {
  thread_local std::vector<double> gpu_loads;
  gpu_loads.assign(gpus_per_node, 0.0);
  for (size_t p = 0; p < plan.rep.phy2log.size(); ++p) {
    const int k = plan.rep.phy2log[p];
    gpu_loads[plan.packing.pack[p]] += ReplicaLoad(node_loads[k], plan.rep.logcnt[k]);
  }
  return *std::max_element(gpu_loads.begin(), gpu_loads.end());
}

// A lower bound on the heaviest GPU of any packing of `rep`'s replicas onto gpus_per_node GPUs of
// equal replica counts, from the experts with more replicas than GPUs: one of k > gpus_per_node
// replicas of an expert of load w shares a GPU with at least m - 1 others, m = ceil(k /
// gpus_per_node), so that GPU carries at least m * w / k plus the lightest replicas that fill it.
// 0 when no expert has more replicas than GPUs.
double SharedGpuLowerBound(std::span<const float> node_loads, const Replication& rep,
                           int gpus_per_node) {
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
  thread_local std::vector<double> loads;
  const std::span<const double> replica_loads = ReplicaLoads(node_loads, rep);
  loads.assign(replica_loads.begin(), replica_loads.end());
  const int fill = per_gpu - shared_count;
  std::nth_element(loads.begin(), loads.begin() + fill, loads.end());
  return std::accumulate(loads.begin(), loads.begin() + fill, shared);
}

// Swap-refines the GPU packing of `plan`. With two or fewer replicas per GPU the greedy packing
// is already optimal (it pairs the i-th heaviest replica with the i-th lightest): nothing to do.
void Refine(std::span<const float> node_loads, int gpus_per_node, NodePlan& plan) {
  const int num_replicas = static_cast<int>(plan.rep.phy2log.size());
  if (num_replicas <= 2 * gpus_per_node) return;
  RefineBySwaps(ReplicaLoads(node_loads, plan.rep), gpus_per_node, /*max_swaps=*/num_replicas,
                plan.packing);
}

// Writes one node's replicas into `placement`: the node's replica p lands at its GPU's slot for
// its rank, and its node-local expert maps back to a logical one through mlog2log.
void EmitNode(const NodePlan& plan, int replicas_per_gpu, int node, int mlog_base,
              const std::vector<int>& mlog2log, LayerPlacement& placement) {
  const int replicas_per_node = static_cast<int>(plan.rep.phy2log.size());
  const int phy_base = node * replicas_per_node;
  for (int p = 0; p < replicas_per_node; ++p) {
    const int q = phy_base + plan.packing.pack[p] * replicas_per_gpu + plan.packing.rank[p];
    placement.phy2log[q] = mlog2log[mlog_base + plan.rep.phy2log[p]];
    placement.phyrank[q] = plan.rep.rank[p];
  }
}

}  // namespace

Packing PackGroups(std::span<const float> loads, const LayerShape& shape, Packing* refined) {
  const int group_size = static_cast<int>(loads.size()) / shape.num_groups;
  std::vector<float> group_load(shape.num_groups, 0.0f);
  for (int g = 0; g < shape.num_groups; ++g) {
    for (int j = 0; j < group_size; ++j) group_load[g] += loads[g * group_size + j];
  }
  Packing groups = BalancedPacking(group_load, shape.num_nodes);
  if (refined != nullptr) {
    *refined = groups;
    const std::vector<double> weights(group_load.begin(), group_load.end());
    RefineBySwaps(weights, shape.num_nodes, /*max_swaps=*/shape.num_groups, *refined);
  }
  return groups;
}

LayerPlacement PlaceNodes(std::span<const float> loads, const LayerShape& shape,
                          const Packing& groups, LayerPlacement* improved) {
  const int num_experts = static_cast<int>(loads.size());
  const int group_size = num_experts / shape.num_groups;
  const int groups_per_node = shape.num_groups / shape.num_nodes;
  const int experts_per_node = num_experts / shape.num_nodes;
  const int replicas_per_node = shape.num_replicas / shape.num_nodes;
  const int gpus_per_node = shape.num_gpus / shape.num_nodes;
  const int replicas_per_gpu = shape.num_replicas / shape.num_gpus;

  // log2mlog maps an expert to its "node-major" index: node, then group within node; mlog2log is
  // its inverse.
  std::vector<int> log2mlog(num_experts);
  std::vector<int> mlog2log(num_experts);
  std::vector<float> mlog_loads(num_experts);  // Node n's experts at [n * experts_per_node, ...).
  for (int g = 0; g < shape.num_groups; ++g) {
    const int mlog_base = (groups.pack[g] * groups_per_node + groups.rank[g]) * group_size;
    for (int j = 0; j < group_size; ++j) {
      const int e = g * group_size + j;
      log2mlog[e] = mlog_base + j;
      mlog2log[mlog_base + j] = e;
      mlog_loads[mlog_base + j] = loads[e];
    }
  }
  const auto node_loads = [&](int node) {
    return std::span<const float>(mlog_loads).subspan(node * experts_per_node, experts_per_node);
  };
  // Each node's experts heaviest first (node-local indices), from one sort of the layer's: equal
  // loads stay in node-major order, which inside a node is node-local order.
  // The node of each node-major index comes from a table, not a division per expert.
  std::vector<int> node_order(num_experts);  // Node n's at [n * experts_per_node, ...).
  std::vector<int> node_of(num_experts);
  std::vector<int> next(shape.num_nodes);  // Where node n's next expert goes in node_order.
  for (int node = 0; node < shape.num_nodes; ++node) {
    next[node] = node * experts_per_node;
    std::fill_n(node_of.begin() + next[node], experts_per_node, node);
  }
  for (const int m : HeaviestFirst(mlog_loads)) {
    const int node = node_of[m];
    node_order[next[node]++] = m - node * experts_per_node;
  }
  const auto order_of = [&](int node) {
    return std::span<const int>(node_order).subspan(node * experts_per_node, experts_per_node);
  };

  LayerPlacement result{std::vector<int>(shape.num_replicas), std::vector<int>(shape.num_replicas),
                        std::vector<int>(num_experts)};
  std::vector<int> mlogcnt(num_experts);
  std::vector<NodePlan> plans;
  if (improved != nullptr) plans.reserve(shape.num_nodes);
  for (int node = 0; node < shape.num_nodes; ++node) {
    NodePlan plan = PlanNode(node_loads(node), order_of(node), replicas_per_node, gpus_per_node);
    std::copy(plan.rep.logcnt.begin(), plan.rep.logcnt.end(),
              mlogcnt.begin() + node * experts_per_node);
    EmitNode(plan, replicas_per_gpu, node, node * experts_per_node, mlog2log, result);
    if (improved != nullptr) plans.push_back(std::move(plan));
  }
  for (int e = 0; e < num_experts; ++e) result.logcnt[e] = mlogcnt[log2mlog[e]];
  if (improved == nullptr) return result;

  // Only the layer's heaviest GPU counts, so improve nodes heaviest first, until the heaviest
  // node is one already improved. A node's candidates: its plan with the packing refined, and,
  // when an expert has more replicas than the node has GPUs (so two share a GPU), replication
  // capped at one replica per GPU, packed and refined.
  *improved = result;
  const bool some_expert_over_cap =
      *std::max_element(mlogcnt.begin(), mlogcnt.end()) > gpus_per_node;
  if (replicas_per_gpu <= 2 && !some_expert_over_cap) return result;  // Nothing to improve.
  std::vector<double> node_max(shape.num_nodes);
  for (int node = 0; node < shape.num_nodes; ++node) {
    node_max[node] = MaxGpuLoad(node_loads(node), plans[node], gpus_per_node);
  }
  std::vector<bool> done(shape.num_nodes, false);
  while (true) {
    const int node =
        static_cast<int>(std::max_element(node_max.begin(), node_max.end()) - node_max.begin());
    if (done[node]) break;
    done[node] = true;  // So its plan is not needed again.
    const std::vector<int>& counts = plans[node].rep.logcnt;
    const bool over_cap = *std::max_element(counts.begin(), counts.end()) > gpus_per_node;
    // The refined plan wins ties with the capped one. Refining is skipped when a lower bound on
    // the plan's heaviest GPU (by more than rounding) shows that the capped plan wins anyway.
    NodePlan best = std::move(plans[node]);
    double best_max = node_max[node];
    NodePlan capped;
    double capped_max = std::numeric_limits<double>::infinity();
    if (over_cap) {
      capped = PlanNode(node_loads(node), order_of(node), replicas_per_node, gpus_per_node,
                        /*max_replicas=*/gpus_per_node);
      Refine(node_loads(node), gpus_per_node, capped);
      capped_max = MaxGpuLoad(node_loads(node), capped, gpus_per_node);
    }
    if (!over_cap ||
        SharedGpuLowerBound(node_loads(node), best.rep, gpus_per_node) * (1.0 - kRoundingMargin) <=
            capped_max) {
      Refine(node_loads(node), gpus_per_node, best);
      best_max = MaxGpuLoad(node_loads(node), best, gpus_per_node);
    }
    if (capped_max < best_max) {
      best = std::move(capped);
      best_max = capped_max;
    }
    if (best_max < node_max[node]) {
      node_max[node] = best_max;
      EmitNode(best, replicas_per_gpu, node, node * experts_per_node, mlog2log, *improved);
      std::copy(best.rep.logcnt.begin(), best.rep.logcnt.end(),
                mlogcnt.begin() + node * experts_per_node);
    }
  }
  for (int e = 0; e < num_experts; ++e) improved->logcnt[e] = mlogcnt[log2mlog[e]];
  return result;
}

}  // namespace eplb::internal
