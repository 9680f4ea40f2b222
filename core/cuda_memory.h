// Device memory for Tensors on CUDA GPUs, and copies between host and device.
// Built only with --config=cuda; callers that must also build without CUDA stay on HostAllocator.
#ifndef CORE_CUDA_MEMORY_H_
#define CORE_CUDA_MEMORY_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/memory.h"
#include "core/tensor.h"

namespace core {

// Allocates with cudaMalloc on the calling thread's current device. Never null; thread-safe.
Allocator* CudaAllocator();

// Number of visible CUDA devices; 0 when there is no GPU or driver (not an error).
int CudaDeviceCount();

// Copies a host tensor to a new tensor on the current device, and back. The Status carries any
// CUDA error (with file:line).
absl::StatusOr<Tensor> ToDevice(const TensorView& host);
absl::StatusOr<Tensor> ToHost(const TensorView& device);

}  // namespace core

#endif  // CORE_CUDA_MEMORY_H_
