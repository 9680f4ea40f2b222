// Test helpers: host Matrix <-> device Tensor copies, so kernels can be checked against the CPU
// layers. DSMOE_CHECK-fail (through gtest) on any CUDA error.
#ifndef MODEL_CUDA_INTERNAL_TEST_UTIL_H_
#define MODEL_CUDA_INTERNAL_TEST_UTIL_H_

#include <cstdint>
#include <vector>

#include "core/cuda_memory.h"
#include "core/tensor.h"
#include "gtest/gtest.h"
#include "model/matrix.h"

namespace model::cuda::test_util {

// A device copy of m, shaped [rows, cols], or [cols] if as_vector.
inline core::Tensor ToDeviceTensor(const Matrix<float>& m, bool as_vector = false) {
  const core::Shape shape = as_vector ? core::Shape({m.cols()}) : core::Shape({m.rows(), m.cols()});
  absl::StatusOr<core::Tensor> t =
      core::ToDevice(core::TensorView(const_cast<float*>(m.data()), core::DType::kF32, shape));
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(t).value();
}

// A device copy of integer indices.
inline core::Tensor ToDeviceTensor(const std::vector<int32_t>& v) {
  absl::StatusOr<core::Tensor> t =
      core::ToDevice(core::TensorView(const_cast<int32_t*>(v.data()), core::DType::kI32,
                                      core::Shape({static_cast<int64_t>(v.size())})));
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(t).value();
}

// An uninitialised device tensor of `dims`.
inline core::Tensor DeviceTensor(std::vector<int64_t> dims, core::DType dtype = core::DType::kF32) {
  absl::StatusOr<core::Tensor> t =
      core::Tensor::Empty(core::Shape(std::move(dims)), dtype, core::CudaAllocator());
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(t).value();
}

// The f32 device tensor `device` as a host [rows, cols] matrix (rows * cols elements).
inline Matrix<float> ToHostMatrix(const core::TensorView& device, int64_t rows, int64_t cols) {
  absl::StatusOr<core::Tensor> host = core::ToHost(device);
  EXPECT_TRUE(host.ok()) << host.status();
  Matrix<float> m(rows, cols);
  std::copy_n(host->data<float>(), rows * cols, m.data());
  return m;
}

// The i32 device tensor `device` on the host.
inline std::vector<int32_t> ToHostInts(const core::TensorView& device) {
  absl::StatusOr<core::Tensor> host = core::ToHost(device);
  EXPECT_TRUE(host.ok()) << host.status();
  return std::vector<int32_t>(host->data<int32_t>(), host->data<int32_t>() + host->num_elements());
}

}  // namespace model::cuda::test_util

#endif  // MODEL_CUDA_INTERNAL_TEST_UTIL_H_
