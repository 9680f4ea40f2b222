// How well a placement balances load: balancedness = mean GPU load / max GPU load (1 is perfect),
// where each replica carries its expert's load divided by the expert's replica count.
#ifndef EPLB_BALANCEDNESS_H_
#define EPLB_BALANCEDNESS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "eplb/matrix.h"
#include "eplb/placement.h"

namespace eplb {

// The load of each GPU ([num_gpus]) for one layer: `loads` [num_experts] are the expert loads,
// `phy2log` [num_replicas] and `logcnt` [num_experts] that layer's placement. Replica p is on GPU
// p / (num_replicas / num_gpus). Preconditions: num_gpus divides phy2log.size(); every phy2log
// entry indexes loads and logcnt; logcnt entries of used experts are positive.
std::vector<double> GpuLoads(absl::Span<const double> loads, absl::Span<const int32_t> phy2log,
                             absl::Span<const int32_t> logcnt, int num_gpus);

// mean / max of `gpu_loads`; 1 when all are zero. Precondition: non-empty, all >= 0.
double MeanOverMax(absl::Span<const double> gpu_loads);

struct BalancednessReport {
  std::vector<double> per_layer;  // [layers]: over all GPUs of the layer.
  Matrix<double> per_node;        // [layers, num_nodes]: over the GPUs of each node.
};

// Balancedness of `placement` under `loads` [layers, num_experts]. Returns InvalidArgument when
// loads' shape does not match the placement's. Thread-safe (reads only).
absl::StatusOr<BalancednessReport> ComputeBalancedness(const Placement& placement,
                                                       const Matrix<double>& loads);

}  // namespace eplb

#endif  // EPLB_BALANCEDNESS_H_
