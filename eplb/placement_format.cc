#include "eplb/placement_format.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace eplb {

std::string PlacementToJson(const Placement& placement, const BalancednessReport& report) {
  nlohmann::ordered_json phy2log = nlohmann::ordered_json::array();
  nlohmann::ordered_json log2phy = nlohmann::ordered_json::array();
  nlohmann::ordered_json logcnt = nlohmann::ordered_json::array();
  for (int layer = 0; layer < placement.num_layers(); ++layer) {
    phy2log.push_back(placement.phy2log.row(layer));
    logcnt.push_back(placement.logcnt.row(layer));
    nlohmann::ordered_json experts = nlohmann::ordered_json::array();
    for (int e = 0; e < placement.num_experts(); ++e) {
      experts.push_back(placement.Log2Phy(layer, e));
    }
    log2phy.push_back(std::move(experts));
  }
  const nlohmann::ordered_json result = {{"phy2log", std::move(phy2log)},
                                         {"log2phy", std::move(log2phy)},
                                         {"logcnt", std::move(logcnt)},
                                         {"balancedness", report.per_layer}};
  return result.dump() + "\n";
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
