// Element-wise host reductions shared by the CPU backends (local, and the bf16 MPI operator).
#ifndef COMM_INTERNAL_REDUCE_H_
#define COMM_INTERNAL_REDUCE_H_

#include <cstddef>

#include "comm/buffer.h"
#include "core/dtype.h"

namespace comm::internal {

// inout[i] = op(inout[i], in[i]) for i < count, on host memory holding `dtype` elements.
// bf16 is computed in float and rounded to nearest even. `in` and `inout` may not overlap
// unless equal. Thread-safe (touches only its arguments).
void ReduceInto(ReduceOp op, core::DType dtype, const void* in, void* inout, size_t count);

}  // namespace comm::internal

#endif  // COMM_INTERNAL_REDUCE_H_
