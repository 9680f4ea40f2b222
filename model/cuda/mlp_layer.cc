#include "model/cuda/mlp_layer.h"

#include <cuda_runtime_api.h>

#include <vector>

#include "core/cuda_memory.h"
#include "core/cuda_status.h"
#include "core/status_macros.h"
#include "model/cuda/elementwise_kernels.h"

namespace model::cuda {
namespace {

core::TensorView HostView(const Matrix<float>& m) {
  return core::TensorView(const_cast<float*>(m.data()), core::DType::kF32, {m.rows(), m.cols()});
}

absl::StatusOr<core::Tensor> Zeros(const core::Shape& shape) {
  ASSIGN_OR_RETURN(core::Tensor t,
                   core::Tensor::Empty(shape, core::DType::kF32, core::CudaAllocator()));
  RETURN_IF_CUDA_ERROR(cudaMemset(t.view().raw_data(), 0, t.num_bytes()));
  return t;
}

absl::StatusOr<core::Tensor> Empty(int64_t rows, int64_t cols) {
  return core::Tensor::Empty({rows, cols}, core::DType::kF32, core::CudaAllocator());
}

}  // namespace

absl::StatusOr<MlpLayer> MlpLayer::Create(const std::vector<Param<float>*>& params,
                                          const CublasHandle* handle) {
  if (params.size() != 3) {
    return absl::InvalidArgumentError("MlpLayer::Create: needs the gate, up and down weights");
  }
  MlpLayer layer(handle);
  ASSIGN_OR_RETURN(layer.w_gate_, core::ToDevice(HostView(params[0]->value)));
  ASSIGN_OR_RETURN(layer.w_up_, core::ToDevice(HostView(params[1]->value)));
  ASSIGN_OR_RETURN(layer.w_down_, core::ToDevice(HostView(params[2]->value)));
  ASSIGN_OR_RETURN(layer.g_gate_, Zeros(layer.w_gate_.shape()));
  ASSIGN_OR_RETURN(layer.g_up_, Zeros(layer.w_up_.shape()));
  ASSIGN_OR_RETURN(layer.g_down_, Zeros(layer.w_down_.shape()));
  return layer;
}

absl::StatusOr<core::Tensor> MlpLayer::Forward(const core::TensorView& x, Context* ctx) const {
  if (x.shape().rank() != 2 || x.dim(1) != w_gate_.dim(1)) {
    return absl::InvalidArgumentError("MlpLayer::Forward: x must be [tokens, hidden]");
  }
  const int64_t tokens = x.dim(0);
  const int64_t inter = w_gate_.dim(0);
  ctx->x = x;
  ASSIGN_OR_RETURN(ctx->gate, Empty(tokens, inter));
  ASSIGN_OR_RETURN(ctx->up, Empty(tokens, inter));
  ASSIGN_OR_RETURN(ctx->h, Empty(tokens, inter));
  ASSIGN_OR_RETURN(core::Tensor y, Empty(tokens, w_down_.dim(0)));
  RETURN_IF_ERROR(Gemm(*handle_, x, false, w_gate_.view(), true, 1, 0, ctx->gate.view()));
  RETURN_IF_ERROR(Gemm(*handle_, x, false, w_up_.view(), true, 1, 0, ctx->up.view()));
  RETURN_IF_ERROR(
      SwiGluForward(ctx->gate.view(), ctx->up.view(), ctx->h.view(), handle_->stream()));
  RETURN_IF_ERROR(Gemm(*handle_, ctx->h.view(), false, w_down_.view(), true, 1, 0, y.view()));
  return y;
}

absl::StatusOr<core::Tensor> MlpLayer::BackwardInput(core::Tensor dy, Context* ctx) const {
  const int64_t tokens = ctx->x.dim(0);
  if (dy.shape() != core::Shape({tokens, w_down_.dim(0)})) {
    return absl::InvalidArgumentError("MlpLayer::BackwardInput: dy does not match the forward");
  }
  const int64_t inter = w_gate_.dim(0);
  ASSIGN_OR_RETURN(core::Tensor dh, Empty(tokens, inter));
  ASSIGN_OR_RETURN(ctx->d_gate, Empty(tokens, inter));
  ASSIGN_OR_RETURN(ctx->d_up, Empty(tokens, inter));
  ASSIGN_OR_RETURN(core::Tensor dx, Empty(tokens, w_gate_.dim(1)));
  RETURN_IF_ERROR(Gemm(*handle_, dy.view(), false, w_down_.view(), false, 1, 0, dh.view()));
  RETURN_IF_ERROR(SwiGluBackward(ctx->gate.view(), ctx->up.view(), dh.view(), ctx->d_gate.view(),
                                 ctx->d_up.view(), handle_->stream()));
  RETURN_IF_ERROR(
      Gemm(*handle_, ctx->d_gate.view(), false, w_gate_.view(), false, 1, 0, dx.view()));
  RETURN_IF_ERROR(Gemm(*handle_, ctx->d_up.view(), false, w_up_.view(), false, 1, 1, dx.view()));
  ctx->dy = std::move(dy);
  // Freeing device memory (cudaFree) waits for the kernels still reading it.
  ctx->gate = core::Tensor();
  ctx->up = core::Tensor();
  return dx;
}

absl::Status MlpLayer::BackwardWeight(Context* ctx) {
  RETURN_IF_ERROR(Gemm(*handle_, ctx->dy.view(), true, ctx->h.view(), false, 1, 1, g_down_.view()));
  RETURN_IF_ERROR(Gemm(*handle_, ctx->d_gate.view(), true, ctx->x, false, 1, 1, g_gate_.view()));
  RETURN_IF_ERROR(Gemm(*handle_, ctx->d_up.view(), true, ctx->x, false, 1, 1, g_up_.view()));
  *ctx = Context();  // cudaFree waits for the GEMMs reading these
  return absl::OkStatus();
}

absl::Status MlpLayer::CopyGradsTo(const std::vector<Param<float>*>& params) const {
  if (params.size() != 3) {
    return absl::InvalidArgumentError("MlpLayer::CopyGradsTo: needs the gate, up and down weights");
  }
  const core::Tensor* grads[3] = {&g_gate_, &g_up_, &g_down_};
  for (int i = 0; i < 3; ++i) {
    ASSIGN_OR_RETURN(core::Tensor host, core::ToHost(grads[i]->view()));
    std::copy_n(host.data<float>(), params[i]->grad.size(), params[i]->grad.data());
  }
  return absl::OkStatus();
}

}  // namespace model::cuda
