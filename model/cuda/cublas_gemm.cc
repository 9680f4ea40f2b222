#include "model/cuda/cublas_gemm.h"

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "model/cuda/device_check.h"

namespace model::cuda {
namespace {

absl::Status CublasStatus(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string message = absl::StrCat(what, ": ", cublasGetStatusName(status), " (",
                                           cublasGetStatusString(status), ")");
  if (status == CUBLAS_STATUS_NOT_INITIALIZED) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

}  // namespace

absl::StatusOr<CublasHandle> CublasHandle::Create() {
  cublasHandle_t handle = nullptr;
  RETURN_IF_ERROR(CublasStatus(cublasCreate(&handle), "cublasCreate"));
  return CublasHandle(handle);
}

CublasHandle& CublasHandle::operator=(CublasHandle&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) cublasDestroy(handle_);
    handle_ = other.handle_;
    stream_ = other.stream_;
    other.handle_ = nullptr;
  }
  return *this;
}

CublasHandle::~CublasHandle() {
  if (handle_ != nullptr) cublasDestroy(handle_);
}

absl::Status CublasHandle::SetStream(cudaStream_t stream) {
  RETURN_IF_ERROR(CublasStatus(cublasSetStream(handle_, stream), "cublasSetStream"));
  stream_ = stream;
  return absl::OkStatus();
}

absl::Status Gemm(const CublasHandle& handle, const core::TensorView& a, bool transpose_a,
                  const core::TensorView& b, bool transpose_b, float alpha, float beta,
                  const core::TensorView& c) {
  if (a.shape().rank() != 2 || b.shape().rank() != 2 || c.shape().rank() != 2) {
    return absl::InvalidArgumentError("Gemm: a, b and c must be matrices");
  }
  const int64_t m = transpose_a ? a.dim(1) : a.dim(0);
  const int64_t k = transpose_a ? a.dim(0) : a.dim(1);
  const int64_t n = transpose_b ? b.dim(0) : b.dim(1);
  RETURN_IF_ERROR(CheckDeviceTensor(a, core::DType::kF32, a.shape().dims(), "Gemm a"));
  RETURN_IF_ERROR(CheckDeviceTensor(
      b, core::DType::kF32, transpose_b ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n},
      "Gemm b"));
  RETURN_IF_ERROR(CheckDeviceTensor(c, core::DType::kF32, {m, n}, "Gemm c"));
  if (m == 0 || n == 0) return absl::OkStatus();
  // Row-major X is column-major X^T, so compute c^T = op(b)^T op(a)^T in column-major terms.
  return CublasStatus(
      cublasSgemm(handle.get(), transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                  transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                  static_cast<int>(k), &alpha, b.data<float>(), static_cast<int>(b.dim(1)),
                  a.data<float>(), static_cast<int>(a.dim(1)), &beta, c.data<float>(),
                  static_cast<int>(n)),
      "cublasSgemm");
}

}  // namespace model::cuda
