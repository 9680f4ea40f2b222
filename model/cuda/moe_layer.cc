#include "model/cuda/moe_layer.h"

#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"
#include "core/axpy.h"
#include "core/cuda_memory.h"
#include "core/cuda_status.h"
#include "core/status_macros.h"
#include "model/cuda/routing_kernels.h"

namespace model::cuda {
namespace {

using core::DType;
using core::Tensor;
using core::TensorView;

absl::StatusOr<Tensor> Empty(std::vector<int64_t> dims, DType dtype = DType::kF32) {
  return Tensor::Empty(core::Shape(std::move(dims)), dtype, core::CudaAllocator());
}

absl::StatusOr<Tensor> Upload(const Matrix<float>& m, std::vector<int64_t> dims) {
  return core::ToDevice(
      TensorView(const_cast<float*>(m.data()), DType::kF32, core::Shape(std::move(dims))));
}

absl::StatusOr<Tensor> UploadIndices(const std::vector<int64_t>& values) {
  std::vector<int32_t> narrow(values.begin(), values.end());
  return core::ToDevice(
      TensorView(narrow.data(), DType::kI32, {static_cast<int64_t>(narrow.size())}));
}

// Copies `src` into rows [begin, begin + src rows) of `dst` on `stream`.
absl::Status CopyRowsInto(const TensorView& src, const TensorView& dst, int64_t begin,
                          cudaStream_t stream) {
  const size_t row_bytes = dst.dim(1) * sizeof(float);
  RETURN_IF_CUDA_ERROR(cudaMemcpyAsync(static_cast<char*>(dst.raw_data()) + begin * row_bytes,
                                       src.raw_data(), src.num_bytes(), cudaMemcpyDeviceToDevice,
                                       stream));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MoeLayer> MoeLayer::Create(Moe<float>& moe, const MoeConfig& config,
                                          const CublasHandle* handle) {
  if (moe.ep_size() != 1) {
    return absl::InvalidArgumentError("MoeLayer: expert parallelism is not supported on the GPU");
  }
  if (!moe.gate().has_bias() || moe.gate().is_softmax()) {
    return absl::InvalidArgumentError(
        "MoeLayer: the GPU gate is DeepSeek-V3's only (sigmoid scores with the selection bias; "
        "MoeConfig.score_func sigmoid and gate_bias)");
  }
  const std::vector<Param<float>*> params = moe.Params();
  MoeLayer layer(handle);
  layer.top_k_ = config.top_k();
  layer.num_groups_ = config.num_groups();
  layer.topk_groups_ = config.topk_groups();
  layer.route_scale_ = config.route_scale();
  const int64_t experts = moe.num_experts();
  ASSIGN_OR_RETURN(layer.gate_weight_,
                   Upload(params[0]->value, {experts, params[0]->value.cols()}));
  ASSIGN_OR_RETURN(layer.gate_grad_, Empty({experts, params[0]->value.cols()}));
  RETURN_IF_CUDA_ERROR(
      cudaMemset(layer.gate_grad_.view().raw_data(), 0, layer.gate_grad_.num_bytes()));
  ASSIGN_OR_RETURN(layer.gate_bias_, Upload(params[1]->value, {experts}));
  size_t next = 2;
  if (config.num_shared_experts() > 0) {
    ASSIGN_OR_RETURN(MlpLayer shared,
                     MlpLayer::Create({params.begin() + 2, params.begin() + 5}, handle));
    layer.shared_ = std::make_unique<MlpLayer>(std::move(shared));
    next = 5;
  }
  for (; next < params.size(); next += 3) {
    ASSIGN_OR_RETURN(MlpLayer expert,
                     MlpLayer::Create({params.begin() + next, params.begin() + next + 3}, handle));
    layer.routed_.push_back(std::move(expert));
  }
  return layer;
}

absl::StatusOr<Tensor> MoeLayer::Forward(const TensorView& x, Context* ctx) const {
  if (x.shape().rank() != 2 || x.dim(1) != gate_weight_.dim(1)) {
    return absl::InvalidArgumentError("MoeLayer::Forward: x must be [tokens, hidden]");
  }
  const int64_t tokens = x.dim(0);
  const int64_t hidden = x.dim(1);
  const int64_t experts = gate_weight_.dim(0);
  const cudaStream_t stream = handle_->stream();
  ctx->x = x;
  ASSIGN_OR_RETURN(Tensor logits, Empty({tokens, experts}));
  RETURN_IF_ERROR(Gemm(*handle_, x, false, gate_weight_.view(), true, 1, 0, logits.view()));
  ASSIGN_OR_RETURN(ctx->scores, Empty({tokens, experts}));
  ASSIGN_OR_RETURN(ctx->experts, Empty({tokens, top_k_}, DType::kI32));
  ASSIGN_OR_RETURN(ctx->weights, Empty({tokens, top_k_}));
  RETURN_IF_ERROR(Route(logits.view(), gate_bias_.view(),
                        {top_k_, num_groups_, topk_groups_, route_scale_}, ctx->scores.view(),
                        ctx->experts.view(), ctx->weights.view(), stream));
  RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream));
  ASSIGN_OR_RETURN(Tensor chosen, core::ToHost(ctx->experts.view()));
  const int32_t* chosen_data = chosen.data<int32_t>();
  ctx->plan = PlanDispatch(std::vector<int32_t>(chosen_data, chosen_data + tokens * top_k_), top_k_,
                           experts);
  std::vector<int64_t> row_of_slot(ctx->plan.slots.size());
  for (size_t r = 0; r < row_of_slot.size(); ++r) row_of_slot[ctx->plan.slots[r]] = r;
  ASSIGN_OR_RETURN(ctx->slots, UploadIndices(ctx->plan.slots));
  ASSIGN_OR_RETURN(ctx->row_of_slot, UploadIndices(row_of_slot));
  const int64_t slots = tokens * top_k_;
  ASSIGN_OR_RETURN(ctx->rows, Empty({slots, hidden}));
  RETURN_IF_ERROR(PermuteRows(x, ctx->slots.view(), top_k_, ctx->rows.view(), stream));
  ASSIGN_OR_RETURN(ctx->expert_out, Empty({slots, hidden}));
  ctx->routed.resize(routed_.size());
  for (size_t e = 0; e < routed_.size(); ++e) {
    const int64_t begin = ctx->plan.expert_offsets[e];
    const int64_t end = ctx->plan.expert_offsets[e + 1];
    if (begin == end) continue;
    ASSIGN_OR_RETURN(Tensor y,
                     routed_[e].Forward(ctx->rows.view().Slice(begin, end), &ctx->routed[e]));
    RETURN_IF_ERROR(CopyRowsInto(y.view(), ctx->expert_out.view(), begin, stream));
  }
  ASSIGN_OR_RETURN(Tensor out, Empty({tokens, hidden}));
  RETURN_IF_ERROR(CombineRows(ctx->expert_out.view(), ctx->weights.view(), ctx->row_of_slot.view(),
                              top_k_, out.view(), stream));
  if (shared_ != nullptr) {
    ASSIGN_OR_RETURN(Tensor shared, shared_->Forward(x, &ctx->shared));
    RETURN_IF_ERROR(core::CudaAxpy(1.0f, shared.view(), out.view()));
  }
  return out;
}

absl::StatusOr<Tensor> MoeLayer::BackwardInput(Tensor dy, Context* ctx) const {
  const int64_t tokens = ctx->x.dim(0);
  const int64_t hidden = ctx->x.dim(1);
  if (dy.shape() != core::Shape({tokens, hidden})) {
    return absl::InvalidArgumentError("MoeLayer::BackwardInput: dy does not match the forward");
  }
  const int64_t slots = tokens * top_k_;
  const cudaStream_t stream = handle_->stream();
  ASSIGN_OR_RETURN(Tensor d_rows, Empty({slots, hidden}));
  ASSIGN_OR_RETURN(Tensor d_weights, Empty({tokens, top_k_}));
  RETURN_IF_ERROR(CombineRowsBackward(dy.view(), ctx->expert_out.view(), ctx->weights.view(),
                                      ctx->row_of_slot.view(), top_k_, d_rows.view(),
                                      d_weights.view(), stream));
  ASSIGN_OR_RETURN(Tensor dx_rows, Empty({slots, hidden}));
  for (size_t e = 0; e < routed_.size(); ++e) {
    const int64_t begin = ctx->plan.expert_offsets[e];
    const int64_t end = ctx->plan.expert_offsets[e + 1];
    if (begin == end) continue;
    ASSIGN_OR_RETURN(Tensor dy_e, Empty({end - begin, hidden}));
    RETURN_IF_CUDA_ERROR(cudaMemcpyAsync(dy_e.view().raw_data(),
                                         d_rows.view().Slice(begin, end).raw_data(),
                                         dy_e.num_bytes(), cudaMemcpyDeviceToDevice, stream));
    ASSIGN_OR_RETURN(Tensor dx_e, routed_[e].BackwardInput(std::move(dy_e), &ctx->routed[e]));
    RETURN_IF_ERROR(CopyRowsInto(dx_e.view(), dx_rows.view(), begin, stream));
  }
  ASSIGN_OR_RETURN(Tensor dx, Empty({tokens, hidden}));
  RETURN_IF_ERROR(CombineRows(dx_rows.view(), TensorView(), ctx->row_of_slot.view(), top_k_,
                              dx.view(), stream));
  ASSIGN_OR_RETURN(ctx->d_logits, Empty({tokens, gate_weight_.dim(0)}));
  RETURN_IF_ERROR(RouteBackward(ctx->scores.view(), ctx->experts.view(), d_weights.view(),
                                route_scale_, ctx->d_logits.view(), stream));
  RETURN_IF_ERROR(
      Gemm(*handle_, ctx->d_logits.view(), false, gate_weight_.view(), false, 1, 1, dx.view()));
  if (shared_ != nullptr) {
    ASSIGN_OR_RETURN(Tensor dx_shared, shared_->BackwardInput(std::move(dy), &ctx->shared));
    RETURN_IF_ERROR(core::CudaAxpy(1.0f, dx_shared.view(), dx.view()));
  }
  ctx->expert_out = Tensor();  // ctx->rows stays: the experts' contexts borrow slices of it
  return dx;
}

absl::Status MoeLayer::BackwardWeight(Context* ctx) {
  RETURN_IF_ERROR(
      Gemm(*handle_, ctx->d_logits.view(), true, ctx->x, false, 1, 1, gate_grad_.view()));
  if (shared_ != nullptr) RETURN_IF_ERROR(shared_->BackwardWeight(&ctx->shared));
  for (size_t e = 0; e < routed_.size(); ++e) {
    if (ctx->plan.expert_offsets[e] == ctx->plan.expert_offsets[e + 1]) continue;
    RETURN_IF_ERROR(routed_[e].BackwardWeight(&ctx->routed[e]));
  }
  *ctx = Context();  // cudaFree waits for the GEMMs reading these
  return absl::OkStatus();
}

absl::Status MoeLayer::CopyGradsTo(Moe<float>& moe) const {
  const std::vector<Param<float>*> params = moe.Params();
  ASSIGN_OR_RETURN(Tensor gate_grad, core::ToHost(gate_grad_.view()));
  std::copy_n(gate_grad.data<float>(), params[0]->grad.size(), params[0]->grad.data());
  size_t next = 2;
  if (shared_ != nullptr) {
    RETURN_IF_ERROR(shared_->CopyGradsTo({params.begin() + 2, params.begin() + 5}));
    next = 5;
  }
  for (const MlpLayer& expert : routed_) {
    RETURN_IF_ERROR(expert.CopyGradsTo({params.begin() + next, params.begin() + next + 3}));
    next += 3;
  }
  return absl::OkStatus();
}

}  // namespace model::cuda
