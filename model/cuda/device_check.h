// Argument checks shared by the CUDA kernel wrappers: a tensor must be on the device, of the
// expected dtype and shape. Host code only (no CUDA headers needed).
#ifndef MODEL_CUDA_DEVICE_CHECK_H_
#define MODEL_CUDA_DEVICE_CHECK_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/tensor.h"

namespace model::cuda {

// OK if `view` is a device tensor of `dtype` and shape `dims`; INVALID_ARGUMENT naming `what`
// (e.g. "RmsNormForward x") otherwise.
inline absl::Status CheckDeviceTensor(const core::TensorView& view, core::DType dtype,
                                      const std::vector<int64_t>& dims, const char* what) {
  if (view.device() != core::Device::kCuda) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a CUDA tensor"));
  }
  if (view.dtype() != dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": dtype ", core::Name(view.dtype()), ", expected ", core::Name(dtype)));
  }
  if (view.shape().dims() != dims) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": shape ", view.shape().ToString(),
                                                   ", expected ", core::Shape(dims).ToString()));
  }
  return absl::OkStatus();
}

}  // namespace model::cuda

#endif  // MODEL_CUDA_DEVICE_CHECK_H_
