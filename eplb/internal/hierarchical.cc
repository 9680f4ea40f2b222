#include "eplb/internal/hierarchical.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace eplb::internal {
namespace {

double MaxPackLoad(std::span<const double> weights, const Packing& packing, int num_packs) {
  std::vector<double> load(num_packs, 0.0);
  for (size_t i = 0; i < weights.size(); ++i) load[packing.pack[i]] += weights[i];
  return *std::max_element(load.begin(), load.end());
}

// Writes one node's replicas into `placement`: physical replica q of the node is its replica
// pphy2phy[q], whose node-local expert maps back to a logical one through mlog2log.
void EmitNode(const Replication& rep, const Packing& gpus, int replicas_per_gpu, int node,
              int mlog_base, const std::vector<int>& mlog2log, LayerPlacement& placement) {
  const int replicas_per_node = static_cast<int>(rep.phy2log.size());
  std::vector<int> phy2pphy(replicas_per_node);
  for (int p = 0; p < replicas_per_node; ++p) {
    phy2pphy[p] = gpus.pack[p] * replicas_per_gpu + gpus.rank[p];
  }
  const std::vector<int> pphy2phy = InversePermutation(phy2pphy);
  const int phy_base = node * replicas_per_node;
  for (int q = 0; q < replicas_per_node; ++q) {
    const int p = pphy2phy[q];
    placement.phy2log[phy_base + q] = mlog2log[mlog_base + rep.phy2log[p]];
    placement.phyrank[phy_base + q] = rep.rank[p];
  }
}

// Refines the GPU packings of PlaceNodes' nodes and writes them into `refined`. Only the layer's
// heaviest GPU counts, so nodes are refined heaviest first until the heaviest node is one already
// refined. With two or fewer replicas per GPU the greedy packing is already optimal (it pairs the
// i-th heaviest replica with the i-th lightest), so nothing changes.
void RefineHeaviestNodes(const LayerShape& shape, const std::vector<int>& mlog2log,
                         const std::vector<Replication>& reps,
                         const std::vector<std::vector<double>>& weights,
                         std::vector<Packing>& packings, LayerPlacement& refined) {
  const int gpus_per_node = shape.num_gpus / shape.num_nodes;
  const int replicas_per_gpu = shape.num_replicas / shape.num_gpus;
  const int experts_per_node = static_cast<int>(mlog2log.size()) / shape.num_nodes;
  if (replicas_per_gpu <= 2) return;
  std::vector<double> node_max(shape.num_nodes);
  for (int node = 0; node < shape.num_nodes; ++node) {
    node_max[node] = MaxPackLoad(weights[node], packings[node], gpus_per_node);
  }
  std::vector<bool> done(shape.num_nodes, false);
  while (true) {
    const int node =
        static_cast<int>(std::max_element(node_max.begin(), node_max.end()) - node_max.begin());
    if (done[node]) return;
    done[node] = true;
    RefineBySwaps(weights[node], gpus_per_node,
                  /*max_swaps=*/static_cast<int>(weights[node].size()), packings[node]);
    node_max[node] = MaxPackLoad(weights[node], packings[node], gpus_per_node);
    EmitNode(reps[node], packings[node], replicas_per_gpu, node, node * experts_per_node,
             mlog2log, refined);
  }
}

}  // namespace

Packing PackGroups(std::span<const float> loads, const LayerShape& shape, bool refine) {
  const int group_size = static_cast<int>(loads.size()) / shape.num_groups;
  std::vector<float> group_load(shape.num_groups, 0.0f);
  for (int g = 0; g < shape.num_groups; ++g) {
    for (int j = 0; j < group_size; ++j) group_load[g] += loads[g * group_size + j];
  }
  Packing groups = BalancedPacking(group_load, shape.num_nodes);
  if (refine) {
    const std::vector<double> weights(group_load.begin(), group_load.end());
    RefineBySwaps(weights, shape.num_nodes, /*max_swaps=*/shape.num_groups, groups);
  }
  return groups;
}

LayerPlacement PlaceNodes(std::span<const float> loads, const LayerShape& shape,
                          const Packing& groups, int max_replicas_per_expert,
                          LayerPlacement* refined) {
  const int num_experts = static_cast<int>(loads.size());
  const int group_size = num_experts / shape.num_groups;
  const int groups_per_node = shape.num_groups / shape.num_nodes;
  const int experts_per_node = num_experts / shape.num_nodes;
  const int replicas_per_node = shape.num_replicas / shape.num_nodes;
  const int gpus_per_node = shape.num_gpus / shape.num_nodes;
  const int replicas_per_gpu = shape.num_replicas / shape.num_gpus;

  // log2mlog maps an expert to its "node-major" index: node, then group within node.
  std::vector<int> log2mlog(num_experts);
  for (int g = 0; g < shape.num_groups; ++g) {
    for (int j = 0; j < group_size; ++j) {
      log2mlog[g * group_size + j] =
          (groups.pack[g] * groups_per_node + groups.rank[g]) * group_size + j;
    }
  }
  const std::vector<int> mlog2log = InversePermutation(log2mlog);

  LayerPlacement result{std::vector<int>(shape.num_replicas), std::vector<int>(shape.num_replicas),
                        std::vector<int>(num_experts)};
  std::vector<int> mlogcnt(num_experts);
  std::vector<float> node_loads(experts_per_node);
  std::vector<float> replica_loads(replicas_per_node);
  // Per node, what refinement needs: the replication, the GPU packing, replica loads.
  std::vector<Replication> reps;
  std::vector<Packing> packings;
  std::vector<std::vector<double>> weights;
  for (int node = 0; node < shape.num_nodes; ++node) {
    const int mlog_base = node * experts_per_node;
    // Step 2: replicate the node's experts into its replicas.
    for (int k = 0; k < experts_per_node; ++k) node_loads[k] = loads[mlog2log[mlog_base + k]];
    Replication rep = ReplicateExperts(node_loads, replicas_per_node, max_replicas_per_expert);
    for (int k = 0; k < experts_per_node; ++k) mlogcnt[mlog_base + k] = rep.logcnt[k];

    // Step 3: pack the node's replicas onto its GPUs.
    for (int p = 0; p < replicas_per_node; ++p) {
      const int k = rep.phy2log[p];
      replica_loads[p] = node_loads[k] / static_cast<float>(rep.logcnt[k]);
    }
    Packing gpus = BalancedPacking(replica_loads, gpus_per_node);
    EmitNode(rep, gpus, replicas_per_gpu, node, mlog_base, mlog2log, result);
    if (refined != nullptr) {
      reps.push_back(std::move(rep));
      packings.push_back(std::move(gpus));
      weights.emplace_back(replica_loads.begin(), replica_loads.end());
    }
  }
  if (refined != nullptr) {
    *refined = result;
    RefineHeaviestNodes(shape, mlog2log, reps, weights, packings, *refined);
  }
  for (int e = 0; e < num_experts; ++e) result.logcnt[e] = mlogcnt[log2mlog[e]];
  if (refined != nullptr) refined->logcnt = result.logcnt;
  return result;
}

}  // namespace eplb::internal
