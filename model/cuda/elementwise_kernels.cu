#include "core/cuda_status.h"
#include "core/status_macros.h"
#include "model/cuda/device_check.h"
#include "model/cuda/elementwise_kernels.h"

namespace model::cuda {
namespace {

using core::DType;
using core::TensorView;

constexpr int kThreads = 256;

// The sum of v over the block (blockDim.x == kThreads), returned to every thread.
__device__ float BlockSum(float v) {
  __shared__ float partial[kThreads / 32];
  __shared__ float total;
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0;
    for (int i = 0; i < kThreads / 32; ++i) sum += partial[i];
    total = sum;
  }
  __syncthreads();
  return total;
}

__global__ void RmsNormForwardKernel(const float* x, const float* g, float eps, int64_t width,
                                     float* y, float* inv_rms) {
  const float* row = x + blockIdx.x * width;
  float sum = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) sum += row[i] * row[i];
  const float r = rsqrtf(BlockSum(sum) / static_cast<float>(width) + eps);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    y[blockIdx.x * width + i] = row[i] * r * g[i];
  }
  if (threadIdx.x == 0) inv_rms[blockIdx.x] = r;
}

__global__ void RmsNormBackwardInputKernel(const float* x, const float* g, const float* inv_rms,
                                           const float* dy, int64_t width, float* dx) {
  const int64_t base = blockIdx.x * width;
  float sum = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x)
    sum += dy[base + i] * g[i] * x[base + i];
  const float mean_ux = BlockSum(sum) / static_cast<float>(width);
  const float r = inv_rms[blockIdx.x];
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    dx[base + i] = r * dy[base + i] * g[i] - x[base + i] * r * r * r * mean_ux;
  }
}

__global__ void RmsNormBackwardWeightKernel(const float* x, const float* inv_rms, const float* dy,
                                            int64_t tokens, int64_t width, float* dg) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= width) return;
  float sum = 0;
  for (int64_t t = 0; t < tokens; ++t) sum += dy[t * width + i] * x[t * width + i] * inv_rms[t];
  dg[i] += sum;
}

__global__ void RopeKernel(float* x, int64_t tokens, int64_t num_heads, int64_t head_dim,
                           int64_t seq_len, double theta, double sign) {
  const int64_t pairs = head_dim / 2;
  const int64_t n = tokens * num_heads * pairs;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = k % pairs;
    const int64_t h = (k / pairs) % num_heads;
    const int64_t t = k / (pairs * num_heads);
    // The angle in double, as on the CPU: positions times frequencies lose precision in f32.
    const double angle =
        static_cast<double>(t % seq_len) * pow(theta, -2.0 * i / static_cast<double>(head_dim));
    double s, c;
    sincos(angle, &s, &c);
    float* pair = x + t * num_heads * head_dim + h * head_dim + 2 * i;
    const float a = pair[0];
    const float b = pair[1];
    const float cf = static_cast<float>(c);
    const float sf = static_cast<float>(sign * s);
    pair[0] = a * cf - b * sf;
    pair[1] = a * sf + b * cf;
  }
}

__global__ void SwiGluForwardKernel(const float* gate, const float* up, int64_t n, float* h) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float g = gate[i];
    h[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void SwiGluBackwardKernel(const float* gate, const float* up, const float* dh, int64_t n,
                                     float* d_gate, float* d_up) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float g = gate[i];
    const float sig = 1.0f / (1.0f + expf(-g));
    d_up[i] = dh[i] * g * sig;
    d_gate[i] = dh[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
  }
}

int GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

}  // namespace

absl::Status RmsNormForward(const TensorView& x, const TensorView& g, float eps,
                            const TensorView& y, const TensorView& inv_rms, cudaStream_t stream) {
  if (x.shape().rank() != 2) return absl::InvalidArgumentError("RmsNormForward x: rank 2 needed");
  const int64_t tokens = x.dim(0);
  const int64_t width = x.dim(1);
  RETURN_IF_ERROR(CheckDeviceTensor(x, DType::kF32, {tokens, width}, "RmsNormForward x"));
  RETURN_IF_ERROR(CheckDeviceTensor(g, DType::kF32, {width}, "RmsNormForward g"));
  RETURN_IF_ERROR(CheckDeviceTensor(y, DType::kF32, {tokens, width}, "RmsNormForward y"));
  RETURN_IF_ERROR(CheckDeviceTensor(inv_rms, DType::kF32, {tokens}, "RmsNormForward inv_rms"));
  if (tokens == 0) return absl::OkStatus();
  RmsNormForwardKernel<<<tokens, kThreads, 0, stream>>>(
      x.data<float>(), g.data<float>(), eps, width, y.data<float>(), inv_rms.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status RmsNormBackwardInput(const TensorView& x, const TensorView& g,
                                  const TensorView& inv_rms, const TensorView& dy,
                                  const TensorView& dx, cudaStream_t stream) {
  if (x.shape().rank() != 2) {
    return absl::InvalidArgumentError("RmsNormBackwardInput x: rank 2 needed");
  }
  const int64_t tokens = x.dim(0);
  const int64_t width = x.dim(1);
  RETURN_IF_ERROR(CheckDeviceTensor(x, DType::kF32, {tokens, width}, "RmsNormBackwardInput x"));
  RETURN_IF_ERROR(CheckDeviceTensor(g, DType::kF32, {width}, "RmsNormBackwardInput g"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(inv_rms, DType::kF32, {tokens}, "RmsNormBackwardInput inv_rms"));
  RETURN_IF_ERROR(CheckDeviceTensor(dy, DType::kF32, {tokens, width}, "RmsNormBackwardInput dy"));
  RETURN_IF_ERROR(CheckDeviceTensor(dx, DType::kF32, {tokens, width}, "RmsNormBackwardInput dx"));
  if (tokens == 0) return absl::OkStatus();
  RmsNormBackwardInputKernel<<<tokens, kThreads, 0, stream>>>(
      x.data<float>(), g.data<float>(), inv_rms.data<float>(), dy.data<float>(), width,
      dx.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status RmsNormBackwardWeight(const TensorView& x, const TensorView& inv_rms,
                                   const TensorView& dy, const TensorView& dg,
                                   cudaStream_t stream) {
  if (x.shape().rank() != 2) {
    return absl::InvalidArgumentError("RmsNormBackwardWeight x: rank 2 needed");
  }
  const int64_t tokens = x.dim(0);
  const int64_t width = x.dim(1);
  RETURN_IF_ERROR(CheckDeviceTensor(x, DType::kF32, {tokens, width}, "RmsNormBackwardWeight x"));
  RETURN_IF_ERROR(
      CheckDeviceTensor(inv_rms, DType::kF32, {tokens}, "RmsNormBackwardWeight inv_rms"));
  RETURN_IF_ERROR(CheckDeviceTensor(dy, DType::kF32, {tokens, width}, "RmsNormBackwardWeight dy"));
  RETURN_IF_ERROR(CheckDeviceTensor(dg, DType::kF32, {width}, "RmsNormBackwardWeight dg"));
  if (width == 0) return absl::OkStatus();
  RmsNormBackwardWeightKernel<<<(width + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      x.data<float>(), inv_rms.data<float>(), dy.data<float>(), tokens, width, dg.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status Rope(const TensorView& x, int64_t num_heads, int64_t head_dim, int64_t seq_len,
                  double theta, bool inverse, cudaStream_t stream) {
  if (x.shape().rank() != 2 || head_dim <= 0 || head_dim % 2 != 0 || num_heads <= 0 ||
      seq_len <= 0 || x.dim(0) % seq_len != 0) {
    return absl::InvalidArgumentError(
        "Rope: x must be [tokens, heads * head_dim] with an even head_dim and whole sequences");
  }
  RETURN_IF_ERROR(CheckDeviceTensor(x, DType::kF32, {x.dim(0), num_heads * head_dim}, "Rope x"));
  const int64_t n = x.dim(0) * num_heads * (head_dim / 2);
  if (n == 0) return absl::OkStatus();
  RopeKernel<<<GridFor(n), kThreads, 0, stream>>>(x.data<float>(), x.dim(0), num_heads, head_dim,
                                                  seq_len, theta, inverse ? -1.0 : 1.0);
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status SwiGluForward(const TensorView& gate, const TensorView& up, const TensorView& h,
                           cudaStream_t stream) {
  const std::vector<int64_t>& dims = gate.shape().dims();
  RETURN_IF_ERROR(CheckDeviceTensor(gate, DType::kF32, dims, "SwiGluForward gate"));
  RETURN_IF_ERROR(CheckDeviceTensor(up, DType::kF32, dims, "SwiGluForward up"));
  RETURN_IF_ERROR(CheckDeviceTensor(h, DType::kF32, dims, "SwiGluForward h"));
  const int64_t n = gate.num_elements();
  if (n == 0) return absl::OkStatus();
  SwiGluForwardKernel<<<GridFor(n), kThreads, 0, stream>>>(gate.data<float>(), up.data<float>(), n,
                                                           h.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status SwiGluBackward(const TensorView& gate, const TensorView& up, const TensorView& dh,
                            const TensorView& d_gate, const TensorView& d_up, cudaStream_t stream) {
  const std::vector<int64_t>& dims = gate.shape().dims();
  RETURN_IF_ERROR(CheckDeviceTensor(gate, DType::kF32, dims, "SwiGluBackward gate"));
  RETURN_IF_ERROR(CheckDeviceTensor(up, DType::kF32, dims, "SwiGluBackward up"));
  RETURN_IF_ERROR(CheckDeviceTensor(dh, DType::kF32, dims, "SwiGluBackward dh"));
  RETURN_IF_ERROR(CheckDeviceTensor(d_gate, DType::kF32, dims, "SwiGluBackward d_gate"));
  RETURN_IF_ERROR(CheckDeviceTensor(d_up, DType::kF32, dims, "SwiGluBackward d_up"));
  const int64_t n = gate.num_elements();
  if (n == 0) return absl::OkStatus();
  SwiGluBackwardKernel<<<GridFor(n), kThreads, 0, stream>>>(
      gate.data<float>(), up.data<float>(), dh.data<float>(), n, d_gate.data<float>(),
      d_up.data<float>());
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace model::cuda
