#include "eplb/balancedness.h"

#include <algorithm>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace eplb {

std::vector<double> GpuLoads(absl::Span<const double> loads, absl::Span<const int32_t> phy2log,
                             absl::Span<const int32_t> logcnt, int num_gpus) {
  const int per_gpu = static_cast<int>(phy2log.size()) / num_gpus;
  std::vector<double> gpu_loads(num_gpus, 0.0);
  for (size_t p = 0; p < phy2log.size(); ++p) {
    const int e = phy2log[p];
    gpu_loads[p / per_gpu] += loads[e] / logcnt[e];
  }
  return gpu_loads;
}

double MeanOverMax(absl::Span<const double> gpu_loads) {
  const double max = *std::max_element(gpu_loads.begin(), gpu_loads.end());
  if (max <= 0.0) return 1.0;
  const double mean = std::accumulate(gpu_loads.begin(), gpu_loads.end(), 0.0) / gpu_loads.size();
  return mean / max;
}

absl::StatusOr<BalancednessReport> ComputeBalancedness(const Placement& placement,
                                                       const Matrix<double>& loads) {
  if (loads.rows() != placement.num_layers() || loads.cols() != placement.num_experts()) {
    return absl::InvalidArgumentError(
        absl::StrCat("loads is ", loads.rows(), "x", loads.cols(), " but the placement has ",
                     placement.num_layers(), " layers of ", placement.num_experts(), " experts"));
  }
  BalancednessReport report{std::vector<double>(placement.num_layers()),
                            Matrix<double>(placement.num_layers(), placement.num_nodes)};
  const int per_node = placement.gpus_per_node();
  for (int layer = 0; layer < placement.num_layers(); ++layer) {
    const std::vector<double> gpu_loads = GpuLoads(loads.row(layer), placement.phy2log.row(layer),
                                                   placement.logcnt.row(layer), placement.num_gpus);
    report.per_layer[layer] = MeanOverMax(gpu_loads);
    for (int node = 0; node < placement.num_nodes; ++node) {
      report.per_node(layer, node) =
          MeanOverMax(absl::Span<const double>(gpu_loads).subspan(node * per_node, per_node));
    }
  }
  return report;
}

}  // namespace eplb
