// Rebalance at DeepSeek-V3 scale (58 MoE layers x 256 experts, 288 replicas, 8 groups) on Zipf
// loads, for each policy and topology, on one thread and with layers in parallel on a thread pool.
// Besides (wall-clock) time, each run reports the mean balancedness over layers ("balancedness")
// and its worst layer ("worst_layer").
//
//   bazel run -c opt //eplb:rebalance_benchmark
#include <algorithm>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/thread_pool.h"
#include "eplb/balancedness.h"
#include "eplb/rebalance.h"
#include "eplb/synthetic_loads.h"

namespace eplb {
namespace {

constexpr int kLayers = 58;
constexpr int kExperts = 256;
constexpr int kReplicas = 288;
constexpr int kGroups = 8;

// Mean balancedness over layers ("balancedness") and the worst layer's ("worst_layer"), and
// "bound": the mean over layers of the best balancedness any placement could reach that keeps each
// group on the node it has here and R / N replicas per node. Its heaviest GPU carries at least the
// heaviest node's load per GPU and at least the heaviest replica, which greedy replication (used by
// both policies) makes as light as possible.
void ReportBalancedness(benchmark::State& state, const Placement& placement,
                        const Matrix<double>& loads, Policy policy, bool hierarchical) {
  const BalancednessReport report = *ComputeBalancedness(placement, loads);
  const std::vector<double>& b = report.per_layer;
  state.counters["balancedness"] = std::accumulate(b.begin(), b.end(), 0.0) / b.size();
  state.counters["worst_layer"] = *std::min_element(b.begin(), b.end());
  state.SetLabel(std::string(PolicyName(policy)));
  const int per_node = hierarchical ? placement.gpus_per_node() : placement.num_gpus;
  double bound_sum = 0.0;
  for (int layer = 0; layer < placement.num_layers(); ++layer) {
    const std::vector<double> gpu = GpuLoads(loads.row(layer), placement.phy2log.row(layer),
                                             placement.logcnt.row(layer), placement.num_gpus);
    double heaviest_node = 0.0;
    for (int node = 0; node < placement.num_gpus / per_node; ++node) {
      heaviest_node = std::max(
          heaviest_node,
          std::accumulate(gpu.begin() + node * per_node, gpu.begin() + (node + 1) * per_node, 0.0));
    }
    double heaviest_replica = 0.0;
    for (int p = 0; p < placement.num_replicas(); ++p) {
      const int e = placement.phy2log(layer, p);
      heaviest_replica = std::max(heaviest_replica, loads(layer, e) / placement.logcnt(layer, e));
    }
    const double mean = std::accumulate(gpu.begin(), gpu.end(), 0.0) / gpu.size();
    bound_sum += mean / std::max(heaviest_node / per_node, heaviest_replica);
  }
  state.counters["bound"] = bound_sum / placement.num_layers();
}

// Args: policy (0 deepseek, 1 refined), nodes, gpus, Zipf exponent x 10, pool threads (0: none).
void BM_Rebalance(benchmark::State& state) {
  const Policy policy = state.range(0) == 0 ? Policy::kDeepSeek : Policy::kRefined;
  const int nodes = static_cast<int>(state.range(1));
  const int gpus = static_cast<int>(state.range(2));
  const double exponent = state.range(3) / 10.0;
  const int threads = static_cast<int>(state.range(4));
  std::unique_ptr<core::ThreadPool> pool;
  if (threads > 0) pool = std::make_unique<core::ThreadPool>(threads);
  const Matrix<double> loads = ZipfLoads(kLayers, kExperts, exponent, 1 << 20, /*seed=*/2024);
  absl::StatusOr<Placement> placement;
  for (auto _ : state) {
    placement = Rebalance(loads, kReplicas, kGroups, nodes, gpus, policy, pool.get());
    benchmark::DoNotOptimize(placement);
  }
  if (!placement.ok()) {
    state.SkipWithError(std::string(placement.status().message()).c_str());
    return;
  }
  ReportBalancedness(state, *placement, loads, policy, kGroups % nodes == 0);
}

void Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"policy", "nodes", "gpus", "zipf_x10", "threads"});
  for (int exponent : {5, 8, 10, 12}) {
    for (int policy : {0, 1}) {
      b->Args({policy, 4, 32, exponent, 0});
      b->Args({policy, 18, 144, exponent, 0});
    }
  }
  // Layers in parallel on a pool as large as the machine.
  const int threads = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  for (int policy : {0, 1}) {
    b->Args({policy, 4, 32, 10, threads});
    b->Args({policy, 18, 144, 10, threads});
  }
  b->Unit(benchmark::kMicrosecond);
  b->UseRealTime();
}

BENCHMARK(BM_Rebalance)->Apply(Args);

}  // namespace
}  // namespace eplb
