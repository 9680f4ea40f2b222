// CUDA runtime errors as absl::Status, with the file and line of the failing call.
//
//   RETURN_IF_CUDA_ERROR(cudaMemcpy(...));
//
// Only for code built with --config=cuda (it includes cuda_runtime_api.h).
#ifndef CORE_CUDA_STATUS_H_
#define CORE_CUDA_STATUS_H_

#include <cuda_runtime_api.h>

#include "absl/status/status.h"

namespace core {

// OK for cudaSuccess; otherwise INTERNAL (UNAVAILABLE when no device or driver is present)
// carrying the CUDA error name, its description and `file`:`line`.
absl::Status CudaStatus(cudaError_t error, const char* file, int line);

}  // namespace core

#define RETURN_IF_CUDA_ERROR(expr)                                                           \
  do {                                                                                       \
    const ::absl::Status core_cuda_status_ = ::core::CudaStatus((expr), __FILE__, __LINE__); \
    if (!core_cuda_status_.ok()) return core_cuda_status_;                                   \
  } while (false)

#endif  // CORE_CUDA_STATUS_H_
