// CUDA kernels of causal multi-head attention (the core between the projections), f32, matching
// model/attention.h: per sequence of seq_len tokens and per head, o = softmax(q k^T / sqrt(d) +
// causal mask) v. q and k are already rotated (RoPE). The backward recomputes the probabilities
// from the saved log-sum-exp instead of storing them. Calls are asynchronous on `stream`;
// INVALID_ARGUMENT names a bad tensor. Built only with --config=cuda.
#ifndef MODEL_CUDA_ATTENTION_KERNELS_H_
#define MODEL_CUDA_ATTENTION_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "core/tensor.h"

namespace model::cuda {

struct AttentionShape {
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t seq_len = 0;  // divides the token count; at most 4096
};

// q, k, v, o [tokens, heads * head_dim]; lse [tokens, heads] (written: log-sum-exp of each
// query's scaled, masked scores).
absl::Status AttentionForward(const core::TensorView& q, const core::TensorView& k,
                              const core::TensorView& v, const AttentionShape& shape,
                              const core::TensorView& o, const core::TensorView& lse,
                              cudaStream_t stream = nullptr);

// Gradients with respect to q, k and v (all [tokens, heads * head_dim]) from d_o, given the
// forward's inputs and lse. delta [tokens, heads] is scratch (rowsum(dP * P)).
absl::Status AttentionBackward(const core::TensorView& q, const core::TensorView& k,
                               const core::TensorView& v, const core::TensorView& d_o,
                               const core::TensorView& lse, const AttentionShape& shape,
                               const core::TensorView& delta, const core::TensorView& dq,
                               const core::TensorView& dk, const core::TensorView& dv,
                               cudaStream_t stream = nullptr);

}  // namespace model::cuda

#endif  // MODEL_CUDA_ATTENTION_KERNELS_H_
