#include "core/cuda_memory.h"

#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"
#include "core/cuda_status.h"
#include "core/status_macros.h"

namespace core {

absl::Status CudaStatus(cudaError_t error, const char* file, int line) {
  if (error == cudaSuccess) return absl::OkStatus();
  const std::string message = absl::StrCat(cudaGetErrorName(error), ": ", cudaGetErrorString(error),
                                           " at ", file, ":", line);
  if (error == cudaErrorNoDevice || error == cudaErrorInsufficientDriver) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

namespace {

class CudaAllocatorImpl final : public Allocator {
 public:
  absl::StatusOr<void*> Allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    void* data = nullptr;
    const cudaError_t error = cudaMalloc(&data, bytes);
    if (error == cudaErrorMemoryAllocation) {
      return absl::ResourceExhaustedError(absl::StrCat("cudaMalloc of ", bytes, " bytes failed"));
    }
    RETURN_IF_CUDA_ERROR(error);
    return data;
  }
  void Free(void* data) override {
    if (data != nullptr) cudaFree(data);
  }
  Device device() const override { return Device::kCuda; }
};

absl::StatusOr<Tensor> CopyTo(const TensorView& src, Device expected_src, Allocator* allocator,
                              cudaMemcpyKind kind) {
  if (src.device() != expected_src) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a ", Name(expected_src), " tensor, got ", Name(src.device())));
  }
  ASSIGN_OR_RETURN(Tensor dst, Tensor::Empty(src.shape(), src.dtype(), allocator));
  if (src.num_bytes() > 0) {
    RETURN_IF_CUDA_ERROR(cudaMemcpy(dst.view().raw_data(), src.raw_data(), src.num_bytes(), kind));
  }
  return dst;
}

}  // namespace

Allocator* CudaAllocator() {
  static CudaAllocatorImpl* const allocator = new CudaAllocatorImpl();
  return allocator;
}

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

absl::StatusOr<Tensor> ToDevice(const TensorView& host) {
  return CopyTo(host, Device::kHost, CudaAllocator(), cudaMemcpyHostToDevice);
}

absl::StatusOr<Tensor> ToHost(const TensorView& device) {
  return CopyTo(device, Device::kCuda, HostAllocator(), cudaMemcpyDeviceToHost);
}

}  // namespace core
