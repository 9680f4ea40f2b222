#include "absl/strings/str_cat.h"
#include "core/cuda_status.h"
#include "core/status_macros.h"
#include "model/cuda/device_check.h"
#include "model/cuda/routing_kernels.h"

namespace model::cuda {
namespace {

using core::DType;
using core::TensorView;

constexpr int kThreads = 256;
constexpr int kMaxExperts = 256;

// One thread per token. Repeated arg-max with strict '>' over ascending indices gives the lower
// index on ties, as the CPU gate's stable sort does.
__global__ void RouteKernel(const float* logits, const float* bias, int64_t tokens, int experts,
                            RouteOptions options, float* scores, int32_t* chosen, float* weights) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= tokens) return;
  float* s = scores + t * experts;
  for (int e = 0; e < experts; ++e) s[e] = 1.0f / (1.0f + expf(-logits[t * experts + e]));
  const int group_size = experts / options.num_groups;
  const int per_group = group_size < 2 ? group_size : 2;
  float group_score[32];
  for (int g = 0; g < options.num_groups; ++g) {
    float best = -INFINITY, second = -INFINITY;
    for (int e = g * group_size; e < (g + 1) * group_size; ++e) {
      const float v = s[e] + bias[e];
      if (v > best) {
        second = best;
        best = v;
      } else if (v > second) {
        second = v;
      }
    }
    group_score[g] = per_group == 2 ? best + second : best;
  }
  uint32_t kept = 0;
  for (int i = 0; i < options.topk_groups; ++i) {
    int arg = -1;
    for (int g = 0; g < options.num_groups; ++g) {
      if (!(kept >> g & 1u) && (arg < 0 || group_score[g] > group_score[arg])) arg = g;
    }
    kept |= 1u << arg;
  }
  uint32_t taken[kMaxExperts / 32] = {};
  float sum = 0;
  for (int j = 0; j < options.top_k; ++j) {
    int arg = -1;
    float arg_value = 0;
    for (int e = 0; e < experts; ++e) {
      if (!(kept >> (e / group_size) & 1u) || (taken[e / 32] >> (e % 32) & 1u)) continue;
      const float v = s[e] + bias[e];
      if (arg < 0 || v > arg_value) {
        arg = e;
        arg_value = v;
      }
    }
    taken[arg / 32] |= 1u << (arg % 32);
    chosen[t * options.top_k + j] = arg;
    sum += s[arg];
  }
  for (int j = 0; j < options.top_k; ++j) {
    weights[t * options.top_k + j] = s[chosen[t * options.top_k + j]] / sum * options.route_scale;
  }
}

// One thread per token: with w_j = c s_j / S, ds_i = c (dw_i - sum_j dw_j s_j / S) / S, and
// d_logit = ds s (1 - s).
__global__ void RouteBackwardKernel(const float* scores, const int32_t* chosen,
                                    const float* d_weights, int64_t tokens, int experts, int top_k,
                                    float route_scale, float* d_logits) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= tokens) return;
  const float* s = scores + t * experts;
  const int32_t* c = chosen + t * top_k;
  const float* dw = d_weights + t * top_k;
  float* out = d_logits + t * experts;
  for (int e = 0; e < experts; ++e) out[e] = 0;
  float sum = 0, weighted = 0;
  for (int j = 0; j < top_k; ++j) {
    sum += s[c[j]];
    weighted += dw[j] * s[c[j]];
  }
  for (int j = 0; j < top_k; ++j) {
    const float ds = route_scale * (dw[j] - weighted / sum) / sum;
    out[c[j]] = ds * s[c[j]] * (1.0f - s[c[j]]);
  }
}

__global__ void PermuteRowsKernel(const float* x, const int32_t* slots, int top_k, int64_t width,
                                  float* rows) {
  const float* src = x + static_cast<int64_t>(slots[blockIdx.x] / top_k) * width;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) rows[blockIdx.x * width + i] = src[i];
}

__global__ void CombineRowsKernel(const float* rows, const float* weights,
                                  const int32_t* row_of_slot, int top_k, int64_t width,
                                  float* out) {
  const int64_t t = blockIdx.x;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    float sum = 0;
    for (int j = 0; j < top_k; ++j) {
      const float w = weights == nullptr ? 1.0f : weights[t * top_k + j];
      sum += w * rows[static_cast<int64_t>(row_of_slot[t * top_k + j]) * width + i];
    }
    out[t * width + i] = sum;
  }
}

// One block per slot (t, j): d_rows[row] = w dy[t]; d_weights(t, j) = dy[t] . rows[row].
__global__ void CombineRowsBackwardKernel(const float* dy, const float* rows, const float* weights,
                                          const int32_t* row_of_slot, int top_k, int64_t width,
                                          float* d_rows, float* d_weights) {
  __shared__ float partial[kThreads];
  const int64_t slot = blockIdx.x;
  const int64_t t = slot / top_k;
  const int64_t row = row_of_slot[slot];
  const float w = weights[slot];
  float dot = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    d_rows[row * width + i] = w * dy[t * width + i];
    dot += dy[t * width + i] * rows[row * width + i];
  }
  partial[threadIdx.x] = dot;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) d_weights[slot] = partial[0];
}

absl::Status RequireRank2(const TensorView& v, const char* what) {
  if (v.shape().rank() == 2) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": rank 2 needed, got ", v.shape().ToString()));
}

}  // namespace

absl::Status Route(const TensorView& logits, const TensorView& bias, const RouteOptions& options,
                   const TensorView& scores, const TensorView& experts, const TensorView& weights,
                   cudaStream_t stream) {
  RETURN_IF_ERROR(RequireRank2(logits, "Route logits"));
  const int64_t tokens = logits.dim(0);
  const int64_t num_experts = logits.dim(1);
  if (num_experts < 1 || num_experts > kMaxExperts || options.num_groups < 1 ||
      options.num_groups > 32 || num_experts % options.num_groups != 0 || options.topk_groups < 1 ||
      options.topk_groups > options.num_groups || options.top_k < 1 || options.top_k > 32 ||
      options.topk_groups * (num_experts / options.num_groups) < options.top_k) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Route: unsupported options for ", num_experts, " experts (at most ", kMaxExperts,
        " experts and 32 groups; top_k <= 32 and within the kept groups)"));
  }
  RETURN_IF_ERROR(CheckDeviceTensor(logits, DType::kF32, {tokens, num_experts}, "Route logits"));
  RETURN_IF_ERROR(CheckDeviceTensor(bias, DType::kF32, {num_experts}, "Route bias"));
  RETURN_IF_ERROR(CheckDeviceTensor(scores, DType::kF32, {tokens, num_experts}, "Route scores"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(experts, DType::kI32, {tokens, options.top_k}, "Route experts"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(weights, DType::kF32, {tokens, options.top_k}, "Route weights"));
  if (tokens == 0) return absl::OkStatus();
  RouteKernel<<<(tokens + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      logits.data<float>(), bias.data<float>(), tokens, static_cast<int>(num_experts), options,
      scores.data<float>(), experts.data<int32_t>(), weights.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status RouteBackward(const TensorView& scores, const TensorView& experts,
                           const TensorView& d_weights, float route_scale,
                           const TensorView& d_logits, cudaStream_t stream) {
  RETURN_IF_ERROR(RequireRank2(scores, "RouteBackward scores"));
  RETURN_IF_ERROR(RequireRank2(experts, "RouteBackward experts"));
  const int64_t tokens = scores.dim(0);
  const int64_t num_experts = scores.dim(1);
  const int64_t top_k = experts.dim(1);
  RETURN_IF_ERROR(
      CheckDeviceTensor(scores, DType::kF32, {tokens, num_experts}, "RouteBackward scores"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(experts, DType::kI32, {tokens, top_k}, "RouteBackward experts"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(d_weights, DType::kF32, {tokens, top_k}, "RouteBackward d_weights"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(d_logits, DType::kF32, {tokens, num_experts}, "RouteBackward d_logits"));
  if (tokens == 0) return absl::OkStatus();
  RouteBackwardKernel<<<(tokens + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      scores.data<float>(), experts.data<int32_t>(), d_weights.data<float>(), tokens,
      static_cast<int>(num_experts), static_cast<int>(top_k), route_scale, d_logits.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status PermuteRows(const TensorView& x, const TensorView& slots, int top_k,
                         const TensorView& rows, cudaStream_t stream) {
  RETURN_IF_ERROR(RequireRank2(x, "PermuteRows x"));
  const int64_t width = x.dim(1);
  const int64_t n = slots.num_elements();
  if (top_k < 1 || n != x.dim(0) * top_k) {
    return absl::InvalidArgumentError("PermuteRows: slots must hold tokens * top_k entries");
  }
  RETURN_IF_ERROR(CheckDeviceTensor(x, DType::kF32, {x.dim(0), width}, "PermuteRows x"));
  RETURN_IF_ERROR(CheckDeviceTensor(slots, DType::kI32, {n}, "PermuteRows slots"));
  RETURN_IF_ERROR(CheckDeviceTensor(rows, DType::kF32, {n, width}, "PermuteRows rows"));
  if (n == 0) return absl::OkStatus();
  PermuteRowsKernel<<<n, kThreads, 0, stream>>>(x.data<float>(), slots.data<int32_t>(), top_k,
                                                width, rows.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status CombineRows(const TensorView& rows, const TensorView& weights,
                         const TensorView& row_of_slot, int top_k, const TensorView& out,
                         cudaStream_t stream) {
  RETURN_IF_ERROR(RequireRank2(rows, "CombineRows rows"));
  RETURN_IF_ERROR(RequireRank2(out, "CombineRows out"));
  const int64_t tokens = out.dim(0);
  const int64_t width = rows.dim(1);
  if (top_k < 1) return absl::InvalidArgumentError("CombineRows: top_k must be positive");
  RETURN_IF_ERROR(
      CheckDeviceTensor(rows, DType::kF32, {tokens * top_k, width}, "CombineRows rows"));
  const bool weighted = weights.num_elements() > 0;
  if (weighted) {
    RETURN_IF_ERROR(
        CheckDeviceTensor(weights, DType::kF32, {tokens, top_k}, "CombineRows weights"));
  }
  RETURN_IF_ERROR(
      CheckDeviceTensor(row_of_slot, DType::kI32, {tokens * top_k}, "CombineRows row_of_slot"));
  RETURN_IF_ERROR(CheckDeviceTensor(out, DType::kF32, {tokens, width}, "CombineRows out"));
  if (tokens == 0) return absl::OkStatus();
  CombineRowsKernel<<<tokens, kThreads, 0, stream>>>(
      rows.data<float>(), weighted ? weights.data<float>() : nullptr, row_of_slot.data<int32_t>(),
      top_k, width, out.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status CombineRowsBackward(const TensorView& dy, const TensorView& rows,
                                 const TensorView& weights, const TensorView& row_of_slot,
                                 int top_k, const TensorView& d_rows, const TensorView& d_weights,
                                 cudaStream_t stream) {
  RETURN_IF_ERROR(RequireRank2(dy, "CombineRowsBackward dy"));
  const int64_t tokens = dy.dim(0);
  const int64_t width = dy.dim(1);
  if (top_k < 1) return absl::InvalidArgumentError("CombineRowsBackward: top_k must be positive");
  const int64_t n = tokens * top_k;
  RETURN_IF_ERROR(CheckDeviceTensor(dy, DType::kF32, {tokens, width}, "CombineRowsBackward dy"));
  RETURN_IF_ERROR(CheckDeviceTensor(rows, DType::kF32, {n, width}, "CombineRowsBackward rows"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(weights, DType::kF32, {tokens, top_k}, "CombineRowsBackward weights"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(row_of_slot, DType::kI32, {n}, "CombineRowsBackward row_of_slot"));
  RETURN_IF_ERROR(CheckDeviceTensor(d_rows, DType::kF32, {n, width}, "CombineRowsBackward d_rows"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(d_weights, DType::kF32, {tokens, top_k}, "CombineRowsBackward d_weights"));
  if (n == 0) return absl::OkStatus();
  CombineRowsBackwardKernel<<<n, kThreads, 0, stream>>>(
      dy.data<float>(), rows.data<float>(), weights.data<float>(), row_of_slot.data<int32_t>(),
      top_k, width, d_rows.data<float>(), d_weights.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace model::cuda
