#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/cuda_status.h"
#include "core/status_macros.h"
#include "model/cuda/attention_kernels.h"
#include "model/cuda/device_check.h"

namespace model::cuda {
namespace {

using core::DType;
using core::TensorView;

constexpr int kThreads = 128;
constexpr int64_t kMaxSeqLen = 4096;  // 2 * 4096 floats of dynamic shared memory fit in 48 KiB

// Sum (or max) of v over the block, returned to every thread. `scratch` holds kThreads floats.
template <bool kMax>
__device__ float BlockReduce(float v, float* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      const float other = scratch[threadIdx.x + stride];
      scratch[threadIdx.x] =
          kMax ? fmaxf(scratch[threadIdx.x], other) : scratch[threadIdx.x] + other;
    }
    __syncthreads();
  }
  const float result = scratch[0];
  __syncthreads();
  return result;
}

// Pointers of one (sequence, head) pair: rows are `stride` floats apart.
struct HeadView {
  int64_t first_token;  // of the sequence
  int64_t offset;       // h * head_dim
  int64_t stride;       // heads * head_dim
};

__device__ HeadView Head(int64_t sequence, int64_t head, const AttentionShape& s) {
  return {sequence * s.seq_len, head * s.head_dim, s.num_heads * s.head_dim};
}

__device__ float Dot(const float* a, const float* b, int64_t n) {
  float sum = 0;
  for (int64_t d = 0; d < n; ++d) sum += a[d] * b[d];
  return sum;
}

// Block per (sequence, head, query i). Dynamic shared memory: seq_len floats of probabilities.
__global__ void ForwardKernel(const float* q, const float* k, const float* v, AttentionShape s,
                              float scale, float* o, float* lse) {
  extern __shared__ float p[];
  __shared__ float scratch[kThreads];
  const int64_t i = blockIdx.x % s.seq_len;
  const int64_t head = (blockIdx.x / s.seq_len) % s.num_heads;
  const int64_t sequence = blockIdx.x / (s.seq_len * s.num_heads);
  const HeadView h = Head(sequence, head, s);
  const float* qi = q + (h.first_token + i) * h.stride + h.offset;
  float local_max = -INFINITY;
  for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) {
    p[j] = scale * Dot(qi, k + (h.first_token + j) * h.stride + h.offset, s.head_dim);
    local_max = fmaxf(local_max, p[j]);
  }
  const float max = BlockReduce<true>(local_max, scratch);
  float local_sum = 0;
  for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) {
    p[j] = expf(p[j] - max);
    local_sum += p[j];
  }
  const float sum = BlockReduce<false>(local_sum, scratch);
  for (int64_t d = threadIdx.x; d < s.head_dim; d += blockDim.x) {
    float acc = 0;
    for (int64_t j = 0; j <= i; ++j) acc += p[j] * v[(h.first_token + j) * h.stride + h.offset + d];
    o[(h.first_token + i) * h.stride + h.offset + d] = acc / sum;
  }
  if (threadIdx.x == 0) lse[(h.first_token + i) * s.num_heads + head] = max + logf(sum);
}

// Block per query i: delta_i = sum_j p_ij dp_ij and dq_i = scale sum_j p_ij (dp_ij - delta_i) k_j.
// Dynamic shared memory: 2 * seq_len floats (p and dp).
__global__ void BackwardQueryKernel(const float* q, const float* k, const float* v,
                                    const float* d_o, const float* lse, AttentionShape s,
                                    float scale, float* delta, float* dq) {
  extern __shared__ float shared[];
  float* p = shared;
  float* dp = shared + s.seq_len;
  __shared__ float scratch[kThreads];
  const int64_t i = blockIdx.x % s.seq_len;
  const int64_t head = (blockIdx.x / s.seq_len) % s.num_heads;
  const int64_t sequence = blockIdx.x / (s.seq_len * s.num_heads);
  const HeadView h = Head(sequence, head, s);
  const int64_t row_i = (h.first_token + i) * h.stride + h.offset;
  const float lse_i = lse[(h.first_token + i) * s.num_heads + head];
  float local = 0;
  for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) {
    const int64_t row_j = (h.first_token + j) * h.stride + h.offset;
    p[j] = expf(scale * Dot(q + row_i, k + row_j, s.head_dim) - lse_i);
    dp[j] = Dot(d_o + row_i, v + row_j, s.head_dim);
    local += p[j] * dp[j];
  }
  const float delta_i = BlockReduce<false>(local, scratch);
  for (int64_t d = threadIdx.x; d < s.head_dim; d += blockDim.x) {
    float acc = 0;
    for (int64_t j = 0; j <= i; ++j) {
      acc += p[j] * (dp[j] - delta_i) * k[(h.first_token + j) * h.stride + h.offset + d];
    }
    dq[row_i + d] = scale * acc;
  }
  if (threadIdx.x == 0) delta[(h.first_token + i) * s.num_heads + head] = delta_i;
}

// Block per key j: dk_j = scale sum_{i >= j} ds_ij q_i and dv_j = sum_{i >= j} p_ij do_i.
// Dynamic shared memory: 2 * seq_len floats (p and ds).
__global__ void BackwardKeyKernel(const float* q, const float* k, const float* v, const float* d_o,
                                  const float* lse, const float* delta, AttentionShape s,
                                  float scale, float* dk, float* dv) {
  extern __shared__ float shared[];
  float* p = shared;
  float* ds = shared + s.seq_len;
  const int64_t j = blockIdx.x % s.seq_len;
  const int64_t head = (blockIdx.x / s.seq_len) % s.num_heads;
  const int64_t sequence = blockIdx.x / (s.seq_len * s.num_heads);
  const HeadView h = Head(sequence, head, s);
  const int64_t row_j = (h.first_token + j) * h.stride + h.offset;
  for (int64_t i = j + threadIdx.x; i < s.seq_len; i += blockDim.x) {
    const int64_t row_i = (h.first_token + i) * h.stride + h.offset;
    const int64_t stat = (h.first_token + i) * s.num_heads + head;
    p[i] = expf(scale * Dot(q + row_i, k + row_j, s.head_dim) - lse[stat]);
    ds[i] = p[i] * (Dot(d_o + row_i, v + row_j, s.head_dim) - delta[stat]);
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < s.head_dim; d += blockDim.x) {
    float acc_k = 0, acc_v = 0;
    for (int64_t i = j; i < s.seq_len; ++i) {
      const int64_t row_i = (h.first_token + i) * h.stride + h.offset;
      acc_k += ds[i] * q[row_i + d];
      acc_v += p[i] * d_o[row_i + d];
    }
    dk[row_j + d] = scale * acc_k;
    dv[row_j + d] = acc_v;
  }
}

absl::Status CheckShapes(const TensorView& q, const AttentionShape& s, const char* what) {
  if (q.shape().rank() != 2 || s.num_heads < 1 || s.head_dim < 1 || s.seq_len < 1 ||
      s.seq_len > kMaxSeqLen || q.dim(1) != s.num_heads * s.head_dim || q.dim(0) % s.seq_len != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": q ", q.shape().ToString(), " does not fit ", s.num_heads, " heads of ", s.head_dim,
        " and sequences of ", s.seq_len, " (at most ", kMaxSeqLen, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AttentionForward(const TensorView& q, const TensorView& k, const TensorView& v,
                              const AttentionShape& shape, const TensorView& o,
                              const TensorView& lse, cudaStream_t stream) {
  RETURN_IF_ERROR(CheckShapes(q, shape, "AttentionForward"));
  const std::vector<int64_t> dims = q.shape().dims();
  const int64_t tokens = dims[0];
  RETURN_IF_ERROR(CheckDeviceTensor(q, DType::kF32, dims, "AttentionForward q"));
  RETURN_IF_ERROR(CheckDeviceTensor(k, DType::kF32, dims, "AttentionForward k"));
  RETURN_IF_ERROR(CheckDeviceTensor(v, DType::kF32, dims, "AttentionForward v"));
  RETURN_IF_ERROR(CheckDeviceTensor(o, DType::kF32, dims, "AttentionForward o"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(lse, DType::kF32, {tokens, shape.num_heads}, "AttentionForward lse"));
  if (tokens == 0) return absl::OkStatus();
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  ForwardKernel<<<tokens * shape.num_heads, kThreads, shape.seq_len * sizeof(float), stream>>>(
      q.data<float>(), k.data<float>(), v.data<float>(), shape, scale, o.data<float>(),
      lse.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status AttentionBackward(const TensorView& q, const TensorView& k, const TensorView& v,
                               const TensorView& d_o, const TensorView& lse,
                               const AttentionShape& shape, const TensorView& delta,
                               const TensorView& dq, const TensorView& dk, const TensorView& dv,
                               cudaStream_t stream) {
  RETURN_IF_ERROR(CheckShapes(q, shape, "AttentionBackward"));
  const std::vector<int64_t> dims = q.shape().dims();
  const int64_t tokens = dims[0];
  const std::vector<int64_t> stats = {tokens, shape.num_heads};
  RETURN_IF_ERROR(CheckDeviceTensor(q, DType::kF32, dims, "AttentionBackward q"));
  RETURN_IF_ERROR(CheckDeviceTensor(k, DType::kF32, dims, "AttentionBackward k"));
  RETURN_IF_ERROR(CheckDeviceTensor(v, DType::kF32, dims, "AttentionBackward v"));
  RETURN_IF_ERROR(CheckDeviceTensor(d_o, DType::kF32, dims, "AttentionBackward d_o"));
  RETURN_IF_ERROR(CheckDeviceTensor(lse, DType::kF32, stats, "AttentionBackward lse"));
  RETURN_IF_ERROR(CheckDeviceTensor(delta, DType::kF32, stats, "AttentionBackward delta"));
  RETURN_IF_ERROR(CheckDeviceTensor(dq, DType::kF32, dims, "AttentionBackward dq"));
  RETURN_IF_ERROR(CheckDeviceTensor(dk, DType::kF32, dims, "AttentionBackward dk"));
  RETURN_IF_ERROR(CheckDeviceTensor(dv, DType::kF32, dims, "AttentionBackward dv"));
  if (tokens == 0) return absl::OkStatus();
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  const size_t shared = 2 * shape.seq_len * sizeof(float);
  const int64_t blocks = tokens * shape.num_heads;
  BackwardQueryKernel<<<blocks, kThreads, shared, stream>>>(
      q.data<float>(), k.data<float>(), v.data<float>(), d_o.data<float>(), lse.data<float>(),
      shape, scale, delta.data<float>(), dq.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  BackwardKeyKernel<<<blocks, kThreads, shared, stream>>>(
      q.data<float>(), k.data<float>(), v.data<float>(), d_o.data<float>(), lse.data<float>(),
      delta.data<float>(), shape, scale, dk.data<float>(), dv.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace model::cuda
