// The DeepSeek-V3 MoE block (model/moe.h) on one GPU (expert parallelism of one): the gate GEMM
// (cuBLAS) and routing kernel, the dispatch plan (built on the host from the routed experts),
// row permute, one MlpLayer per routed expert plus the shared experts, and the weighted combine;
// Forward, BackwardInput and a deferrable BackwardWeight as on the CPU. The sequence-wise balance
// loss is not computed here. Built only with --config=cuda.
#ifndef MODEL_CUDA_MOE_LAYER_H_
#define MODEL_CUDA_MOE_LAYER_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/cuda/cublas_gemm.h"
#include "model/cuda/mlp_layer.h"
#include "model/moe.h"
#include "model/token_permute.h"

namespace model::cuda {

// As MlpLayer: used from one thread, all work on the handle's stream.
class MoeLayer {
 public:
  struct Context {
    core::TensorView x;               // borrowed input: keep it until BackwardWeight
    core::Tensor scores;              // [tokens, experts]: the sigmoid scores
    core::Tensor experts, weights;    // [tokens, top_k]
    core::Tensor slots, row_of_slot;  // [tokens * top_k] i32: the dispatch plan
    DispatchPlan plan;                // the same plan on the host
    core::Tensor rows;  // [slots, hidden]: permuted input (the experts' inputs borrow from it)
    core::Tensor expert_out;                // [slots, hidden]
    core::Tensor d_logits;                  // [tokens, experts], for the gate's weight gradient
    std::vector<MlpLayer::Context> routed;  // per expert
    MlpLayer::Context shared;
  };

  // Copies the weights of `moe` (EP of one; its gate bias is read now) to the device. `handle` is
  // borrowed and must outlive the layer.
  static absl::StatusOr<MoeLayer> Create(Moe<float>& moe, const MoeConfig& config,
                                         const CublasHandle* handle);

  // x [tokens, hidden] (device) -> y [tokens, hidden]. Synchronises the stream once, to build
  // the dispatch plan on the host.
  absl::StatusOr<core::Tensor> Forward(const core::TensorView& x, Context* ctx) const;
  // dy [tokens, hidden] -> dx [tokens, hidden].
  absl::StatusOr<core::Tensor> BackwardInput(core::Tensor dy, Context* ctx) const;
  // Accumulates the gate's, the shared and the routed experts' weight gradients; frees ctx.
  absl::Status BackwardWeight(Context* ctx);

  // Copies the device gradients into moe's grads, in Moe::Params() order (bias excluded).
  absl::Status CopyGradsTo(Moe<float>& moe) const;

 private:
  explicit MoeLayer(const CublasHandle* handle) : handle_(handle) {}

  const CublasHandle* handle_;
  int top_k_ = 0;
  int num_groups_ = 0;
  int topk_groups_ = 0;
  float route_scale_ = 1;
  core::Tensor gate_weight_, gate_grad_;  // [experts, hidden]
  core::Tensor gate_bias_;                // [experts]
  std::unique_ptr<MlpLayer> shared_;      // null without shared experts
  std::vector<MlpLayer> routed_;
};

}  // namespace model::cuda

#endif  // MODEL_CUDA_MOE_LAYER_H_
