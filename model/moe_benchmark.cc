// Forward + backward (input and weight) of one MoE block on the CPU, against the machine's
// single-core SGEMM rate. Run: bazel run -c opt //model:moe_benchmark
//
// BM_Sgemm/<n>/<threads>: an n x n x n f32 GEMM through Eigen and OpenBLAS.
// BM_MoeBlock/<tokens>/<hidden>/<experts>/<threads>: top-4 of `experts` routed experts (4 groups,
// 2 kept) of width hidden / 2, plus one shared expert of the same width. Counters: tokens/s and
// GFLOP/s (GEMM FLOPs only: gate, routed and shared experts; backward = 2 x forward).
// Rates are per second of process CPU time (all threads), so that they compare with the
// single-core SGEMM rate and stay meaningful on a machine shared with other jobs.
#include <cstdint>

#include "benchmark/benchmark.h"
#include "cblas.h"
#include "model/config.pb.h"
#include "model/init.h"
#include "model/moe.h"

namespace model {
namespace {

void BM_Sgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  openblas_set_num_threads(static_cast<int>(state.range(1)));
  const Matrix<float> a = RandomMatrix<float>(n, n, 1);
  const Matrix<float> b = RandomMatrix<float>(n, n, 2);
  Matrix<float> c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Sgemm)->ArgsProduct({{256, 512, 1024}, {1, 2}})->MeasureProcessCPUTime();

void BM_MoeBlock(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const int64_t hidden = state.range(1);
  const int64_t experts = state.range(2);
  openblas_set_num_threads(static_cast<int>(state.range(3)));
  MoeConfig config;
  config.set_num_routed_experts(static_cast<int>(experts));
  config.set_num_shared_experts(1);
  config.set_top_k(4);
  config.set_num_groups(4);
  config.set_topk_groups(2);
  config.set_route_scale(2.5);
  config.set_gate_bias(true);  // V3's gate (the reference has the bias only at width 7168)
  config.set_expert_intermediate_size(static_cast<int>(hidden / 2));
  Moe<float> moe("moe.", hidden, config);
  InitParams(moe.Params(), 0.02, 1);
  const Matrix<float> x = RandomMatrix<float>(tokens, hidden, 2);
  const Matrix<float> dy = RandomMatrix<float>(tokens, hidden, 3);
  for (auto _ : state) {
    Moe<float>::Context ctx;
    benchmark::DoNotOptimize(moe.Forward(x, {tokens}, &ctx).data());
    benchmark::DoNotOptimize(moe.BackwardInput(dy, &ctx).data());
    moe.BackwardWeight(&ctx);
  }
  const double intermediate = static_cast<double>(hidden / 2);
  // Per token: gate 2*H*E; each of top_k routed experts and the shared expert 3 GEMMs of 2*H*I.
  const double forward_flops =
      tokens * (2.0 * hidden * experts + (config.top_k() + 1) * 6.0 * hidden * intermediate);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens * state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(3.0 * forward_flops * state.iterations() / 1e9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MoeBlock)
    ->ArgsProduct({{256, 1024}, {256}, {16}, {1, 2}})
    ->ArgsProduct({{1024, 4096}, {512}, {32}, {1, 2}})
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace model
