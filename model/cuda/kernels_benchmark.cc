// GPU benchmarks of the model's kernels, for machines with a GPU:
//   bazel run --config=cuda -c opt //model/cuda:kernels_benchmark
// BM_CublasSgemm/<n>: an n x n x n f32 GEMM (GFLOP/s). BM_AttentionForwardBackward/<seq>/<heads>:
// causal attention of 4 sequences, head width 128. BM_RoutePermuteCombine/<tokens>: DeepSeek-V3
// routing of 256 experts (8 groups, 4 kept, top-8) of hidden 7168 rows, then permute and combine.
// BM_MoeBlock/<tokens>/<hidden>/<experts>: forward + backward (input and weight) of one MoE block
// (top-8 of `experts`, 8 groups, 4 kept, one shared expert, expert width hidden / 2), GEMM
// GFLOP/s counted as in //model:moe_benchmark.
// Each iteration synchronises the device; times are wall times.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/cuda_memory.h"
#include "model/cuda/attention_kernels.h"
#include "model/cuda/cublas_gemm.h"
#include "model/cuda/moe_layer.h"
#include "model/cuda/routing_kernels.h"
#include "model/init.h"
#include "model/token_permute.h"

namespace model::cuda {
namespace {

// A device tensor of `dims` filled with uniform values in [-1, 1); aborts the benchmark on error.
core::Tensor RandomDevice(benchmark::State& state, int64_t rows, int64_t cols, uint64_t seed) {
  const Matrix<float> host = RandomMatrix<float>(rows, cols, seed);
  absl::StatusOr<core::Tensor> t = core::ToDevice(
      core::TensorView(const_cast<float*>(host.data()), core::DType::kF32, {rows, cols}));
  if (!t.ok()) state.SkipWithError(t.status().ToString().c_str());
  return t.ok() ? std::move(t).value() : core::Tensor();
}

core::Tensor EmptyDevice(benchmark::State& state, std::vector<int64_t> dims,
                         core::DType dtype = core::DType::kF32) {
  absl::StatusOr<core::Tensor> t =
      core::Tensor::Empty(core::Shape(std::move(dims)), dtype, core::CudaAllocator());
  if (!t.ok()) state.SkipWithError(t.status().ToString().c_str());
  return t.ok() ? std::move(t).value() : core::Tensor();
}

bool Check(benchmark::State& state, const absl::Status& status) {
  if (!status.ok()) state.SkipWithError(status.ToString().c_str());
  return status.ok();
}

void BM_CublasSgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  absl::StatusOr<CublasHandle> handle = CublasHandle::Create();
  if (!Check(state, handle.status())) return;
  core::Tensor a = RandomDevice(state, n, n, 1), b = RandomDevice(state, n, n, 2);
  core::Tensor c = EmptyDevice(state, {n, n});
  for (auto _ : state) {
    if (!Check(state, Gemm(*handle, a.view(), false, b.view(), true, 1, 0, c.view()))) return;
    cudaDeviceSynchronize();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CublasSgemm)->Arg(1024)->Arg(4096)->UseRealTime();

void BM_AttentionForwardBackward(benchmark::State& state) {
  const AttentionShape shape{state.range(1), 128, state.range(0)};
  const int64_t tokens = 4 * shape.seq_len;
  const int64_t width = shape.num_heads * shape.head_dim;
  core::Tensor q = RandomDevice(state, tokens, width, 1), k = RandomDevice(state, tokens, width, 2);
  core::Tensor v = RandomDevice(state, tokens, width, 3),
               d_o = RandomDevice(state, tokens, width, 4);
  core::Tensor o = EmptyDevice(state, {tokens, width}), dq = EmptyDevice(state, {tokens, width});
  core::Tensor dk = EmptyDevice(state, {tokens, width}), dv = EmptyDevice(state, {tokens, width});
  core::Tensor lse = EmptyDevice(state, {tokens, shape.num_heads});
  core::Tensor delta = EmptyDevice(state, {tokens, shape.num_heads});
  for (auto _ : state) {
    if (!Check(state,
               AttentionForward(q.view(), k.view(), v.view(), shape, o.view(), lse.view())) ||
        !Check(state, AttentionBackward(q.view(), k.view(), v.view(), d_o.view(), lse.view(), shape,
                                        delta.view(), dq.view(), dk.view(), dv.view()))) {
      return;
    }
    cudaDeviceSynchronize();
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens * state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AttentionForwardBackward)->Args({1024, 16})->Args({4096, 16})->UseRealTime();

void BM_RoutePermuteCombine(benchmark::State& state) {
  constexpr int64_t kExperts = 256, kTopK = 8, kHidden = 7168;
  const int64_t tokens = state.range(0);
  core::Tensor logits = RandomDevice(state, tokens, kExperts, 1);
  core::Tensor bias = RandomDevice(state, 1, kExperts, 2);
  const core::TensorView bias_view = bias.view().Reshaped({kExperts});
  core::Tensor x = RandomDevice(state, tokens, kHidden, 3);
  core::Tensor scores = EmptyDevice(state, {tokens, kExperts});
  core::Tensor experts = EmptyDevice(state, {tokens, kTopK}, core::DType::kI32);
  core::Tensor weights = EmptyDevice(state, {tokens, kTopK});
  core::Tensor rows = EmptyDevice(state, {tokens * kTopK, kHidden});
  core::Tensor out = EmptyDevice(state, {tokens, kHidden});
  const RouteOptions options{static_cast<int>(kTopK), 8, 4, 2.5f};
  if (!Check(state, Route(logits.view(), bias_view, options, scores.view(), experts.view(),
                          weights.view()))) {
    return;
  }
  // The dispatch plan of that routing, built once on the host.
  absl::StatusOr<core::Tensor> chosen_host = core::ToHost(experts.view());
  if (!Check(state, chosen_host.status())) return;
  const int32_t* chosen = chosen_host->data<int32_t>();
  const DispatchPlan plan =
      PlanDispatch(std::vector<int32_t>(chosen, chosen + tokens * kTopK), kTopK, kExperts);
  std::vector<int32_t> slots(plan.slots.begin(), plan.slots.end()), row_of_slot(slots.size());
  for (size_t r = 0; r < slots.size(); ++r) row_of_slot[slots[r]] = static_cast<int32_t>(r);
  const core::Shape index_shape({tokens * kTopK});
  absl::StatusOr<core::Tensor> d_slots =
      core::ToDevice(core::TensorView(slots.data(), core::DType::kI32, index_shape));
  absl::StatusOr<core::Tensor> d_inverse =
      core::ToDevice(core::TensorView(row_of_slot.data(), core::DType::kI32, index_shape));
  if (!Check(state, d_slots.status()) || !Check(state, d_inverse.status())) return;
  for (auto _ : state) {
    if (!Check(state, Route(logits.view(), bias_view, options, scores.view(), experts.view(),
                            weights.view())) ||
        !Check(state, PermuteRows(x.view(), d_slots->view(), kTopK, rows.view())) ||
        !Check(state,
               CombineRows(rows.view(), weights.view(), d_inverse->view(), kTopK, out.view()))) {
      return;
    }
    cudaDeviceSynchronize();
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens * state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RoutePermuteCombine)->Arg(4096)->Arg(16384)->UseRealTime();

void BM_MoeBlock(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const int64_t hidden = state.range(1);
  const int64_t experts = state.range(2);
  MoeConfig config;
  config.set_num_routed_experts(static_cast<int>(experts));
  config.set_num_shared_experts(1);
  config.set_top_k(8);
  config.set_num_groups(8);
  config.set_topk_groups(4);
  config.set_route_scale(2.5);
  config.set_gate_bias(true);  // V3's gate (the reference has the bias only at width 7168)
  config.set_expert_intermediate_size(static_cast<int>(hidden / 2));
  Moe<float> moe("moe.", hidden, config);
  InitParams(moe.Params(), 0.02, 1);
  absl::StatusOr<CublasHandle> handle = CublasHandle::Create();
  if (!Check(state, handle.status())) return;
  absl::StatusOr<MoeLayer> layer = MoeLayer::Create(moe, config, &*handle);
  if (!Check(state, layer.status())) return;
  core::Tensor x = RandomDevice(state, tokens, hidden, 2);
  for (auto _ : state) {
    MoeLayer::Context ctx;
    core::Tensor dy = RandomDevice(state, tokens, hidden, 3);
    absl::StatusOr<core::Tensor> y = layer->Forward(x.view(), &ctx);
    if (!Check(state, y.status())) return;
    absl::StatusOr<core::Tensor> dx = layer->BackwardInput(std::move(dy), &ctx);
    if (!Check(state, dx.status()) || !Check(state, layer->BackwardWeight(&ctx))) return;
    cudaDeviceSynchronize();
  }
  const double forward_flops =
      tokens * (2.0 * hidden * experts + (config.top_k() + 1) * 6.0 * hidden * (hidden / 2));
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens * state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(3.0 * forward_flops * state.iterations() / 1e9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MoeBlock)
    ->Args({4096, 1024, 64})
    ->Args({16384, 2048, 64})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace model::cuda
