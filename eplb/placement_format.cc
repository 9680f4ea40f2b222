#include "eplb/placement_format.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"

namespace eplb {

std::string PlacementToJson(const Placement& placement, const BalancednessReport& report) {
  // Written as text rather than built as a JSON document: a document of 10,000 layers took 20
  // times the memory of its text.
  std::string out = "{\"phy2log\":[";
  const auto append_row = [&out](absl::Span<const int32_t> row) {
    out += '[';
    out += absl::StrJoin(row, ",");
    out += ']';
  };
  for (int layer = 0; layer < placement.num_layers(); ++layer) {
    if (layer > 0) out += ',';
    append_row(placement.phy2log.row(layer));
  }
  out += "],\"log2phy\":[";
  for (int layer = 0; layer < placement.num_layers(); ++layer) {
    out += layer > 0 ? ",[" : "[";
    for (int e = 0; e < placement.num_experts(); ++e) {
      if (e > 0) out += ',';
      append_row(placement.Log2Phy(layer, e));
    }
    out += ']';
  }
  out += "],\"logcnt\":[";
  for (int layer = 0; layer < placement.num_layers(); ++layer) {
    if (layer > 0) out += ',';
    append_row(placement.logcnt.row(layer));
  }
  out += "],\"balancedness\":[";
  for (size_t layer = 0; layer < report.per_layer.size(); ++layer) {
    if (layer > 0) out += ',';
    out += nlohmann::json(report.per_layer[layer]).dump();  // Shortest round-trip form.
  }
  out += "]}\n";
  return out;
}

std::string PlacementToText(const Placement& placement, const Matrix<double>& loads,
                            const BalancednessReport& report) {
  std::string out;
  const int per_gpu = placement.replicas_per_gpu();
  for (int layer = 0; layer < placement.num_layers(); ++layer) {
    absl::StrAppendFormat(&out, "layer %d: balancedness %.4f\n", layer, report.per_layer[layer]);
    const std::vector<double> gpu_loads = GpuLoads(loads.row(layer), placement.phy2log.row(layer),
                                                   placement.logcnt.row(layer), placement.num_gpus);
    for (int gpu = 0; gpu < placement.num_gpus; ++gpu) {
      const int node = gpu / placement.gpus_per_node();
      if (gpu % placement.gpus_per_node() == 0) {
        absl::StrAppendFormat(&out, "  node %d: balancedness %.4f\n", node,
                              report.per_node(layer, node));
      }
      absl::StrAppendFormat(
          &out, "    gpu %d: load %g, experts %s\n", gpu, gpu_loads[gpu],
          absl::StrJoin(placement.phy2log.row(layer).subspan(gpu * per_gpu, per_gpu), " "));
    }
  }
  return out;
}

}  // namespace eplb
