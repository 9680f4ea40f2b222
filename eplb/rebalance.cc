#include "eplb/rebalance.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/status_macros.h"
#include "eplb/internal/hierarchical.h"

namespace eplb {
namespace {

using internal::LayerPlacement;
using internal::LayerShape;

// Upper bound on phy2log and log2phy entries, so that absurd sizes fail cleanly.
constexpr int64_t kMaxEntries = int64_t{1} << 24;

// Upper bound on the sum of one layer's loads. DeepSeek's policy sums loads in float32 (groups,
// GPUs); with the layer's sum at most half of FLT_MAX no float32 partial sum can round up to
// infinity (each of its fewer than 2^24 additions rounds by at most 2^-24 relative), which would
// silently break the packing.
constexpr double kMaxLayerSum = FLT_MAX / 2;

absl::Status CheckPositive(const char* name, int value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, " must be positive, got ", value));
}

absl::Status Validate(const Matrix<double>& loads, int num_replicas, int num_groups, int num_nodes,
                      int num_gpus) {
  if (loads.rows() == 0) return absl::InvalidArgumentError("loads has no layers");
  if (loads.cols() == 0) return absl::InvalidArgumentError("loads has no experts");
  RETURN_IF_ERROR(CheckPositive("num_replicas", num_replicas));
  RETURN_IF_ERROR(CheckPositive("num_groups", num_groups));
  RETURN_IF_ERROR(CheckPositive("num_nodes", num_nodes));
  RETURN_IF_ERROR(CheckPositive("num_gpus", num_gpus));
  const int num_experts = loads.cols();
  if (num_experts % num_groups != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_groups (", num_groups, ") must divide the number of experts (", num_experts, ")"));
  }
  if (num_gpus % num_nodes != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_nodes (", num_nodes, ") must divide num_gpus (", num_gpus, ")"));
  }
  if (num_replicas % num_gpus != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_gpus (", num_gpus, ") must divide num_replicas (", num_replicas, ")"));
  }
  if (num_replicas < num_experts) {
    return absl::InvalidArgumentError(absl::StrCat("num_replicas (", num_replicas,
                                                   ") must be at least the number of experts (",
                                                   num_experts, ")"));
  }
  if (int64_t{loads.rows()} * num_replicas > kMaxEntries) {
    return absl::InvalidArgumentError(absl::StrCat("num_replicas (", num_replicas, ") times ",
                                                   loads.rows(), " layers exceeds ", kMaxEntries,
                                                   " entries"));
  }
  for (int layer = 0; layer < loads.rows(); ++layer) {
    double sum = 0.0;
    for (int e = 0; e < num_experts; ++e) {
      const double load = loads(layer, e);
      if (!(load >= 0.0 && load <= FLT_MAX)) {
        return absl::InvalidArgumentError(
            absl::StrCat("loads[", layer, "][", e, "] is ", load,
                         ": loads must be finite, non-negative and at most FLT_MAX"));
      }
      sum += load;
    }
    if (sum > kMaxLayerSum) {
      return absl::InvalidArgumentError(absl::StrCat(
          "loads of layer ", layer, " sum to ", sum, ": a layer's loads must sum to at most ",
          kMaxLayerSum, " (FLT_MAX / 2), so that the float32 sums of the packing stay finite"));
    }
  }
  return absl::OkStatus();
}

// The load of GPU `gpu` (replicas [gpu * per_gpu, ...)) under `layer`, summed as GpuLoads does.
// The replica of an expert with one replica carries its load undivided: x / 1 is x, and a
// division costs more than the test.
double GpuLoad(absl::Span<const double> loads, const LayerPlacement& layer, int gpu, int per_gpu) {
  double gpu_load = 0.0;
  for (int p = gpu * per_gpu; p < (gpu + 1) * per_gpu; ++p) {
    const int e = layer.phy2log[p];
    const int count = layer.logcnt[e];
    gpu_load += count == 1 ? loads[e] : loads[e] / count;
  }
  return gpu_load;
}

// Stores in gpu_loads the load of each GPU under `layer`.
void LayerGpuLoads(absl::Span<const double> loads, const LayerPlacement& layer, int num_gpus,
                   std::vector<double>& gpu_loads) {
  const int per_gpu = static_cast<int>(layer.phy2log.size()) / num_gpus;
  gpu_loads.resize(num_gpus);
  for (int gpu = 0; gpu < num_gpus; ++gpu) gpu_loads[gpu] = GpuLoad(loads, layer, gpu, per_gpu);
}

// The heaviest GPU's load under `layer`, given `base` and its GPU loads base_gpu_loads: a node
// whose replicas are those of `base` has the same GPU loads (every replica of its experts is on
// it), so only the other nodes are summed.
double MaxGpuLoad(absl::Span<const double> loads, const LayerPlacement& layer,
                  const LayerShape& shape, const LayerPlacement& base,
                  absl::Span<const double> base_gpu_loads) {
  const int per_gpu = shape.num_replicas / shape.num_gpus;
  const int gpus_per_node = shape.num_gpus / shape.num_nodes;
  const int per_node = per_gpu * gpus_per_node;
  double max_load = 0.0;
  for (int node = 0; node < shape.num_nodes; ++node) {
    const int first_gpu = node * gpus_per_node;
    const auto replicas = [&](const LayerPlacement& placement) {
      return absl::Span<const int>(placement.phy2log).subspan(node * per_node, per_node);
    };
    if (std::ranges::equal(replicas(layer), replicas(base))) {
      const absl::Span<const double> node_loads = base_gpu_loads.subspan(first_gpu, gpus_per_node);
      max_load = std::max(max_load, *std::max_element(node_loads.begin(), node_loads.end()));
      continue;
    }
    for (int gpu = first_gpu; gpu < first_gpu + gpus_per_node; ++gpu) {
      max_load = std::max(max_load, GpuLoad(loads, layer, gpu, per_gpu));
    }
  }
  return max_load;
}

// Buffers for placing layer after layer, reused so that the layers after the first do not
// allocate them again.
struct LayerBuffers {
  LayerPlacement deepseek;
  LayerPlacement candidate;
  LayerPlacement kept;
  LayerPlacement regrouped;  // DeepSeek's placement on refined groups (not a candidate itself).
  std::vector<double> deepseek_gpu_loads;
  internal::PlaceWorkspace workspace;
};

// DeepSeek's placement of one layer, in buffers.deepseek.
const LayerPlacement& PlaceDeepSeek(absl::Span<const float> loads32, const LayerShape& shape,
                                    LayerBuffers& buffers) {
  internal::PlaceNodes(loads32, shape,
                       internal::PackGroups(loads32, shape, /*refined=*/nullptr, buffers.workspace),
                       buffers.deepseek, /*improved=*/nullptr, buffers.workspace);
  return buffers.deepseek;
}

// Our policy for one layer: the best of DeepSeek's placement, its improvement by PlaceNodes, and,
// when refining the group packing changes it, the improved placement on the refined groups.
// DeepSeek's wins ties, so an improvement must strictly lower the maximum GPU load to be kept.
// The result lives in `buffers`.
const LayerPlacement& PlaceRefined(absl::Span<const float> loads32, absl::Span<const double> loads,
                                   const LayerShape& shape, LayerBuffers& buffers) {
  internal::Packing better_groups;
  const internal::Packing groups =
      internal::PackGroups(loads32, shape, &better_groups, buffers.workspace);
  const LayerPlacement& deepseek = buffers.deepseek;
  internal::PlaceNodes(loads32, shape, groups, buffers.deepseek, &buffers.candidate,
                       buffers.workspace);
  LayerGpuLoads(loads, deepseek, shape.num_gpus, buffers.deepseek_gpu_loads);
  const std::vector<double>& deepseek_gpu_loads = buffers.deepseek_gpu_loads;
  const LayerPlacement* best = &deepseek;
  double best_max = *std::max_element(deepseek_gpu_loads.begin(), deepseek_gpu_loads.end());
  const auto consider = [&](LayerPlacement& placement) {
    // The same replicas on the same GPUs carry the same loads: not strictly better.
    if (placement.phy2log == best->phy2log) return;
    const double placement_max = MaxGpuLoad(loads, placement, shape, deepseek, deepseek_gpu_loads);
    if (placement_max < best_max) {
      std::swap(buffers.kept, placement);
      best = &buffers.kept;
      best_max = placement_max;
    }
  };
  consider(buffers.candidate);
  if (better_groups.pack != groups.pack) {
    internal::PlaceNodes(loads32, shape, better_groups, buffers.regrouped, &buffers.candidate,
                         buffers.workspace);
    consider(buffers.candidate);
  }
  return *best;
}

}  // namespace

absl::string_view PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kDeepSeek:
      return "deepseek";
    case Policy::kRefined:
      return "refined";
  }
  return "unknown";
}

absl::StatusOr<Policy> ParsePolicy(absl::string_view name) {
  for (Policy policy : {Policy::kDeepSeek, Policy::kRefined}) {
    if (name == PolicyName(policy)) return policy;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("policy '", name, "' is not one of: deepseek, refined"));
}

absl::StatusOr<Placement> Rebalance(const Matrix<double>& loads, int num_replicas, int num_groups,
                                    int num_nodes, int num_gpus, Policy policy,
                                    core::ThreadPool* pool) {
  RETURN_IF_ERROR(Validate(loads, num_replicas, num_groups, num_nodes, num_gpus));
  const int num_layers = loads.rows();
  const int num_experts = loads.cols();
  const bool hierarchical = num_groups % num_nodes == 0;
  const LayerShape shape{.num_replicas = num_replicas,
                         .num_groups = hierarchical ? num_groups : 1,
                         .num_nodes = hierarchical ? num_nodes : 1,
                         .num_gpus = num_gpus};

  Placement placement{.num_gpus = num_gpus,
                      .num_nodes = num_nodes,
                      .phy2log = Matrix<int32_t>(num_layers, num_replicas),
                      .logcnt = Matrix<int32_t>(num_layers, num_experts)};
  Matrix<int32_t> phyrank(num_layers, num_replicas);
  const auto place_layers = [&](int64_t begin, int64_t end) {
    LayerBuffers buffers;
    std::vector<float> loads32(num_experts);
    for (int layer = static_cast<int>(begin); layer < end; ++layer) {
      const absl::Span<const double> row = loads.row(layer);
      // float32 as the reference converts them; + 0.0f turns -0 into +0 for the packing sort.
      std::transform(row.begin(), row.end(), loads32.begin(),
                     [](double load) { return static_cast<float>(load) + 0.0f; });
      const LayerPlacement& placed = policy == Policy::kDeepSeek
                                         ? PlaceDeepSeek(loads32, shape, buffers)
                                         : PlaceRefined(loads32, row, shape, buffers);
      std::copy(placed.phy2log.begin(), placed.phy2log.end(), placement.phy2log.row(layer).begin());
      std::copy(placed.phyrank.begin(), placed.phyrank.end(), phyrank.row(layer).begin());
      std::copy(placed.logcnt.begin(), placed.logcnt.end(), placement.logcnt.row(layer).begin());
    }
  };
  if (pool != nullptr) {
    pool->ParallelFor(0, num_layers, place_layers);
  } else {
    place_layers(0, num_layers);
  }

  const std::vector<int32_t>& counts = placement.logcnt.data();
  placement.max_replicas = *std::max_element(counts.begin(), counts.end());
  if (int64_t{num_layers} * num_experts * placement.max_replicas > kMaxEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_replicas (", num_replicas, ") gives an expert ", placement.max_replicas,
                     " replicas: log2phy would exceed ", kMaxEntries, " entries"));
  }
  placement.log2phy = Matrix<int32_t>(num_layers, num_experts * placement.max_replicas, -1);
  for (int layer = 0; layer < num_layers; ++layer) {
    const absl::Span<int32_t> row = placement.log2phy.row(layer);
    const absl::Span<const int32_t> experts = placement.phy2log.row(layer);
    const absl::Span<const int32_t> ranks = std::as_const(phyrank).row(layer);
    for (int p = 0; p < num_replicas; ++p) row[experts[p] * placement.max_replicas + ranks[p]] = p;
  }
  return placement;
}

}  // namespace eplb
