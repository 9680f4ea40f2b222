// y = alpha * x + y on a CUDA device: the smallest real kernel, proving that the nvcc rule, cudart
// and the Tensor device path work together. Built only with --config=cuda.
#ifndef CORE_AXPY_H_
#define CORE_AXPY_H_

#include "absl/status/status.h"
#include "core/tensor.h"

namespace core {

// x and y: f32 device tensors of equal element count. Runs on the default stream and waits for it.
// INVALID_ARGUMENT on a dtype, device or size mismatch; the CUDA error otherwise.
absl::Status CudaAxpy(float alpha, const TensorView& x, const TensorView& y);

}  // namespace core

#endif  // CORE_AXPY_H_
