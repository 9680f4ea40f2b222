// The SwiGLU MLP (model/mlp.h) on the GPU: y = (silu(x Wg^T) * (x Wu^T)) Wd^T with cuBLAS GEMMs
// and the SwiGLU kernels, split like the CPU layer into Forward, BackwardInput and a deferrable
// BackwardWeight. Weights and gradients live on the device. Built only with --config=cuda.
#ifndef MODEL_CUDA_MLP_LAYER_H_
#define MODEL_CUDA_MLP_LAYER_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/cuda/cublas_gemm.h"
#include "model/mlp.h"

namespace model::cuda {

// Forward and BackwardInput do not change the layer; all calls run on the handle's stream, so a
// layer is used from one thread (or with external synchronisation). Results are ready once that
// stream is synchronised (copies to the host through core::ToHost do so).
class MlpLayer {
 public:
  // One micro-batch's device tensors between the passes.
  struct Context {
    core::TensorView x;         // borrowed input [tokens, hidden]: keep it until BackwardWeight
    core::Tensor gate, up, h;   // [tokens, intermediate]
    core::Tensor dy;            // [tokens, hidden]
    core::Tensor d_gate, d_up;  // [tokens, intermediate]
  };

  // Copies the gate, up and down weights (as Mlp::Params() lists them) to the device, with zero
  // gradients. INVALID_ARGUMENT unless there are three. `handle` is borrowed and must outlive the
  // layer.
  static absl::StatusOr<MlpLayer> Create(const std::vector<Param<float>*>& params,
                                         const CublasHandle* handle);

  // x [tokens, hidden] (device) -> y [tokens, hidden].
  absl::StatusOr<core::Tensor> Forward(const core::TensorView& x, Context* ctx) const;
  // dy [tokens, hidden] -> dx [tokens, hidden]; keeps dy for BackwardWeight.
  absl::StatusOr<core::Tensor> BackwardInput(core::Tensor dy, Context* ctx) const;
  // Accumulates the three weight gradients of ctx's micro-batch; frees ctx.
  absl::Status BackwardWeight(Context* ctx);

  // Copies the device gradients into the grads of `params` (gate, up, down), replacing them.
  absl::Status CopyGradsTo(const std::vector<Param<float>*>& params) const;

 private:
  explicit MlpLayer(const CublasHandle* handle) : handle_(handle) {}

  const CublasHandle* handle_;
  core::Tensor w_gate_, w_up_, w_down_;  // [inter, hidden], [inter, hidden], [hidden, inter]
  core::Tensor g_gate_, g_up_, g_down_;  // their gradients
};

}  // namespace model::cuda

#endif  // MODEL_CUDA_MLP_LAYER_H_
