// Row-major f32 GEMM on the GPU through cuBLAS: the matrix products of the linear layers
// (y = x W^T, dx = dy W, dW += dy^T x).
//
//   ASSIGN_OR_RETURN(CublasHandle handle, CublasHandle::Create());
//   RETURN_IF_ERROR(Gemm(handle, x, false, w, true, 1.0f, 0.0f, y));   // y = x w^T
//
// Built only with --config=cuda.
#ifndef MODEL_CUDA_CUBLAS_GEMM_H_
#define MODEL_CUDA_CUBLAS_GEMM_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"

namespace model::cuda {

// Owns a cuBLAS handle bound to the current device. Move-only; not thread-safe (one per thread
// or stream).
class CublasHandle {
 public:
  // UNAVAILABLE without a usable GPU; INTERNAL for other cuBLAS failures.
  static absl::StatusOr<CublasHandle> Create();
  CublasHandle(CublasHandle&& other) noexcept : handle_(other.handle_), stream_(other.stream_) {
    other.handle_ = nullptr;
  }
  CublasHandle& operator=(CublasHandle&& other) noexcept;
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  ~CublasHandle();

  cublasHandle_t get() const { return handle_; }
  // Later calls with this handle run on `stream` (initially the default stream).
  absl::Status SetStream(cudaStream_t stream);
  cudaStream_t stream() const { return stream_; }

 private:
  explicit CublasHandle(cublasHandle_t handle) : handle_(handle) {}
  cublasHandle_t handle_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

// c = alpha * op(a) op(b) + beta * c for row-major f32 device matrices, op(x) = x^T if the flag
// is set. op(a) [m, k], op(b) [k, n], c [m, n]. Asynchronous on the handle's stream.
// INVALID_ARGUMENT for a shape, dtype or device mismatch; INTERNAL for a cuBLAS error.
absl::Status Gemm(const CublasHandle& handle, const core::TensorView& a, bool transpose_a,
                  const core::TensorView& b, bool transpose_b, float alpha, float beta,
                  const core::TensorView& c);

}  // namespace model::cuda

#endif  // MODEL_CUDA_CUBLAS_GEMM_H_
