// CUDA kernels of the MoE block's token routing, f32, matching model/moe_gate.h and
// model/token_permute.h: the DeepSeek-V3 gate selection (sigmoid scores, group-limited top-k with a
// selection-only bias, normalised and scaled weights) and the row permute / combine of dispatch.
// The dispatch plan itself (slots grouped by expert) comes from model::PlanDispatch; its index
// arrays go to the device as i32. Calls are asynchronous on `stream`; INVALID_ARGUMENT names a
// bad tensor or limit. Built only with --config=cuda.
#ifndef MODEL_CUDA_ROUTING_KERNELS_H_
#define MODEL_CUDA_ROUTING_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "core/tensor.h"

namespace model::cuda {

struct RouteOptions {
  int top_k = 0;
  int num_groups = 0;   // divides the experts; at most 32
  int topk_groups = 0;  // groups kept per token
  float route_scale = 1;
};

// logits [tokens, experts] (x Wg^T), bias [experts] -> scores [tokens, experts] (sigmoid),
// experts [tokens, top_k] (i32, best first, ties to the lower index) and weights [tokens, top_k].
// At most 256 experts and top_k <= 32.
absl::Status Route(const core::TensorView& logits, const core::TensorView& bias,
                   const RouteOptions& options, const core::TensorView& scores,
                   const core::TensorView& experts, const core::TensorView& weights,
                   cudaStream_t stream = nullptr);

// The backward of Route's weights (without the balance loss): d_weights [tokens, top_k] ->
// d_logits [tokens, experts], given the forward's scores and experts. Zero for unchosen experts.
absl::Status RouteBackward(const core::TensorView& scores, const core::TensorView& experts,
                           const core::TensorView& d_weights, float route_scale,
                           const core::TensorView& d_logits, cudaStream_t stream = nullptr);

// rows[r] = x[slots[r] / top_k]. x [tokens, width]; slots [slots] i32 (DispatchPlan::slots);
// rows [slots, width].
absl::Status PermuteRows(const core::TensorView& x, const core::TensorView& slots, int top_k,
                         const core::TensorView& rows, cudaStream_t stream = nullptr);

// out[t] = sum_j w(t, j) rows[row_of_slot[t * top_k + j]] with w = weights [tokens, top_k], or 1
// if weights is empty (num_elements() == 0). row_of_slot [tokens * top_k] i32 is the inverse of
// DispatchPlan::slots; out [tokens, width].
absl::Status CombineRows(const core::TensorView& rows, const core::TensorView& weights,
                         const core::TensorView& row_of_slot, int top_k,
                         const core::TensorView& out, cudaStream_t stream = nullptr);

// The backward of CombineRows with weights, for the upstream gradient dy [tokens, width]:
// d_rows [slots, width] and d_weights [tokens, top_k].
absl::Status CombineRowsBackward(const core::TensorView& dy, const core::TensorView& rows,
                                 const core::TensorView& weights,
                                 const core::TensorView& row_of_slot, int top_k,
                                 const core::TensorView& d_rows, const core::TensorView& d_weights,
                                 cudaStream_t stream = nullptr);

}  // namespace model::cuda

#endif  // MODEL_CUDA_ROUTING_KERNELS_H_
