#include "eplb/placement_diff.h"

#include <algorithm>
#include <string>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace eplb {
namespace {

std::string Shape(const Placement& p) {
  return absl::StrCat(p.num_layers(), " layers, ", p.num_experts(), " experts, ", p.num_replicas(),
                      " replicas, ", p.num_gpus, " GPUs, ", p.num_nodes, " nodes");
}

}  // namespace

absl::StatusOr<std::vector<ExpertCopy>> DiffPlacements(const Placement& from, const Placement& to) {
  if (Shape(from) != Shape(to)) {
    return absl::InvalidArgumentError(
        absl::StrCat("placements differ: from has ", Shape(from), ", to has ", Shape(to)));
  }
  const int num_gpus = to.num_gpus;
  const int num_experts = to.num_experts();
  const int per_gpu = to.replicas_per_gpu();
  const int gpus_per_node = to.gpus_per_node();
  std::vector<ExpertCopy> copies;
  // [num_gpus * num_experts]: old replicas of each expert on each GPU not yet claimed by a new one.
  std::vector<int> unclaimed(static_cast<size_t>(num_gpus) * num_experts);
  std::vector<std::vector<int>> holders(num_experts);  // GPUs holding each expert before.
  std::vector<int> sent(num_gpus);                     // Copies read from each GPU so far.
  for (int layer = 0; layer < to.num_layers(); ++layer) {
    std::fill(unclaimed.begin(), unclaimed.end(), 0);
    std::fill(sent.begin(), sent.end(), 0);
    for (std::vector<int>& gpus : holders) gpus.clear();
    for (int p = 0; p < from.num_replicas(); ++p) {
      const int gpu = p / per_gpu;
      const int e = from.phy2log(layer, p);
      if (e < 0 || e >= num_experts || to.phy2log(layer, p) < 0 ||
          to.phy2log(layer, p) >= num_experts) {
        return absl::InvalidArgumentError(absl::StrCat(
            "replica ", p, " of layer ", layer, " names no expert in [0, ", num_experts, ")"));
      }
      if (unclaimed[static_cast<size_t>(gpu) * num_experts + e]++ == 0) {
        holders[e].push_back(gpu);
      }
    }
    for (int p = 0; p < to.num_replicas(); ++p) {
      const int gpu = p / per_gpu;
      const int e = to.phy2log(layer, p);
      int& here = unclaimed[static_cast<size_t>(gpu) * num_experts + e];
      if (here > 0) {
        --here;  // Stays in place.
        continue;
      }
      if (holders[e].empty()) {
        return absl::InvalidArgumentError(absl::StrCat("expert ", e, " of layer ", layer,
                                                       " has no replica in the old placement"));
      }
      // Same node first, then the least-used source, then the lowest GPU index.
      const auto cost = [&](int src) {
        return std::make_tuple(src / gpus_per_node != gpu / gpus_per_node, sent[src], src);
      };
      const int src = *std::min_element(holders[e].begin(), holders[e].end(),
                                        [&](int a, int b) { return cost(a) < cost(b); });
      ++sent[src];
      copies.push_back(
          {.layer = layer, .expert = e, .src_gpu = src, .dst_gpu = gpu, .dst_replica = p});
    }
  }
  return copies;
}

}  // namespace eplb
