// CUDA kernels for the element-wise and row-wise layers, f32, matching the CPU layers of model/:
// RMSNorm (forward, backward-input, backward-weight), RoPE (forward and inverse) and the SwiGLU
// activation (forward and backward). Tensors are row-major device tensors; shapes in brackets.
// Every call is asynchronous on `stream` and returns INVALID_ARGUMENT for a bad tensor (naming
// it) or the launch error. Built only with --config=cuda.
#ifndef MODEL_CUDA_ELEMENTWISE_KERNELS_H_
#define MODEL_CUDA_ELEMENTWISE_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "core/tensor.h"

namespace model::cuda {

// y = x * inv_rms * g per row, inv_rms = 1 / sqrt(mean(x^2) + eps).
// x, y [tokens, width]; g [width]; inv_rms [tokens] (written, for the backward).
absl::Status RmsNormForward(const core::TensorView& x, const core::TensorView& g, float eps,
                            const core::TensorView& y, const core::TensorView& inv_rms,
                            cudaStream_t stream = nullptr);

// dx = r u - x r^3 mean(u x) with u = dy * g and r = inv_rms. x, dy, dx [tokens, width].
absl::Status RmsNormBackwardInput(const core::TensorView& x, const core::TensorView& g,
                                  const core::TensorView& inv_rms, const core::TensorView& dy,
                                  const core::TensorView& dx, cudaStream_t stream = nullptr);

// dg += sum over tokens of dy * x * inv_rms. dg [width].
absl::Status RmsNormBackwardWeight(const core::TensorView& x, const core::TensorView& inv_rms,
                                   const core::TensorView& dy, const core::TensorView& dg,
                                   cudaStream_t stream = nullptr);

// Rotates x [tokens, heads * head_dim] in place as model::ApplyRope does (interleaved pairs,
// token t at position t % seq_len); inverse rotates back (the backward).
absl::Status Rope(const core::TensorView& x, int64_t num_heads, int64_t head_dim, int64_t seq_len,
                  double theta, bool inverse, cudaStream_t stream = nullptr);

// h = silu(gate) * up. gate, up, h [tokens, width].
absl::Status SwiGluForward(const core::TensorView& gate, const core::TensorView& up,
                           const core::TensorView& h, cudaStream_t stream = nullptr);

// d_gate = dh * up * silu'(gate), d_up = dh * silu(gate). All [tokens, width].
absl::Status SwiGluBackward(const core::TensorView& gate, const core::TensorView& up,
                            const core::TensorView& dh, const core::TensorView& d_gate,
                            const core::TensorView& d_up, cudaStream_t stream = nullptr);

}  // namespace model::cuda

#endif  // MODEL_CUDA_ELEMENTWISE_KERNELS_H_
