// Rebalance at DeepSeek-V3 scale (58 MoE layers x 256 experts, 288 replicas, 8 groups) on Zipf
// loads, for each policy and topology. Besides time, each run reports the mean balancedness over
// layers ("balancedness") and its worst layer ("worst_layer").
//
//   bazel run -c opt //eplb:rebalance_benchmark
#include <algorithm>
#include <numeric>

#include "benchmark/benchmark.h"
#include "eplb/balancedness.h"
#include "eplb/rebalance.h"
#include "eplb/synthetic_loads.h"

namespace eplb {
namespace {

constexpr int kLayers = 58;
constexpr int kExperts = 256;
constexpr int kReplicas = 288;
constexpr int kGroups = 8;

// Args: policy (0 deepseek, 1 refined), nodes, gpus, Zipf exponent x 10.
void BM_Rebalance(benchmark::State& state) {
  const Policy policy = state.range(0) == 0 ? Policy::kDeepSeek : Policy::kRefined;
  const int nodes = static_cast<int>(state.range(1));
  const int gpus = static_cast<int>(state.range(2));
  const double exponent = state.range(3) / 10.0;
  const Matrix<double> loads = ZipfLoads(kLayers, kExperts, exponent, 1 << 20, /*seed=*/2024);
  absl::StatusOr<Placement> placement;
  for (auto _ : state) {
    placement = Rebalance(loads, kReplicas, kGroups, nodes, gpus, policy);
    benchmark::DoNotOptimize(placement);
  }
  if (!placement.ok()) {
    state.SkipWithError(std::string(placement.status().message()).c_str());
    return;
  }
  const BalancednessReport report = *ComputeBalancedness(*placement, loads);
  const std::vector<double>& b = report.per_layer;
  state.counters["balancedness"] = std::accumulate(b.begin(), b.end(), 0.0) / b.size();
  state.counters["worst_layer"] = *std::min_element(b.begin(), b.end());
  state.SetLabel(std::string(PolicyName(policy)));
}

void Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"policy", "nodes", "gpus", "zipf_x10"});
  for (int exponent : {5, 8, 10, 12}) {
    for (int policy : {0, 1}) {
      b->Args({policy, 4, 32, exponent});
      b->Args({policy, 18, 144, exponent});
    }
  }
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_Rebalance)->Apply(Args);

}  // namespace
}  // namespace eplb
