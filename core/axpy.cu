#include <cuda_runtime_api.h>

#include "core/axpy.h"
#include "core/cuda_status.h"

namespace core {
namespace {

__global__ void AxpyKernel(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    y[i] = alpha * x[i] + y[i];
  }
}

}  // namespace

absl::Status CudaAxpy(float alpha, const TensorView& x, const TensorView& y) {
  if (x.dtype() != DType::kF32 || y.dtype() != DType::kF32) {
    return absl::InvalidArgumentError("CudaAxpy: x and y must be f32");
  }
  if (x.device() != Device::kCuda || y.device() != Device::kCuda) {
    return absl::InvalidArgumentError("CudaAxpy: x and y must be on the CUDA device");
  }
  if (x.num_elements() != y.num_elements()) {
    return absl::InvalidArgumentError("CudaAxpy: x and y differ in size");
  }
  const int64_t n = x.num_elements();
  if (n == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  const int blocks = static_cast<int>(n < 4096 * kThreads ? (n + kThreads - 1) / kThreads : 4096);
  AxpyKernel<<<blocks, kThreads>>>(alpha, static_cast<const float*>(x.raw_data()),
                                   static_cast<float*>(y.raw_data()), n);
  RETURN_IF_CUDA_ERROR(cudaGetLastError());
  RETURN_IF_CUDA_ERROR(cudaDeviceSynchronize());
  return absl::OkStatus();
}

}  // namespace core
