#include "comm/internal/reduce.h"

#include <algorithm>
#include <cstdint>

namespace comm::internal {
namespace {

template <typename T>
void ReduceTyped(ReduceOp op, const T* in, T* inout, size_t count) {
  if (op == ReduceOp::kSum) {
    for (size_t i = 0; i < count; ++i) inout[i] += in[i];
  } else {
    for (size_t i = 0; i < count; ++i) inout[i] = std::max(inout[i], in[i]);
  }
}

void ReduceBFloat16(ReduceOp op, const core::BFloat16* in, core::BFloat16* inout, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const float a = core::ToFloat(inout[i]);
    const float b = core::ToFloat(in[i]);
    inout[i] = core::ToBFloat16(op == ReduceOp::kSum ? a + b : std::max(a, b));
  }
}

}  // namespace

void ReduceInto(ReduceOp op, core::DType dtype, const void* in, void* inout, size_t count) {
  switch (dtype) {
    case core::DType::kF32:
      ReduceTyped(op, static_cast<const float*>(in), static_cast<float*>(inout), count);
      return;
    case core::DType::kBF16:
      ReduceBFloat16(op, static_cast<const core::BFloat16*>(in),
                     static_cast<core::BFloat16*>(inout), count);
      return;
    case core::DType::kI32:
      ReduceTyped(op, static_cast<const int32_t*>(in), static_cast<int32_t*>(inout), count);
      return;
    case core::DType::kI64:
      ReduceTyped(op, static_cast<const int64_t*>(in), static_cast<int64_t*>(inout), count);
      return;
    case core::DType::kU8:
      ReduceTyped(op, static_cast<const uint8_t*>(in), static_cast<uint8_t*>(inout), count);
      return;
  }
}

}  // namespace comm::internal
