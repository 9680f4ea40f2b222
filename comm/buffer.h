// Communication buffers: a pointer, an element count, an element type and where the memory lives
// (core::Device, the enum the allocators and tensors use).
// Buffers never own memory; the caller keeps it alive and unchanged for the duration of a call.
#ifndef COMM_BUFFER_H_
#define COMM_BUFFER_H_

#include <cstddef>
#include <string>
#include <type_traits>

#include "absl/types/span.h"
#include "core/dtype.h"
#include "core/memory.h"

namespace comm {

// Reductions supported by AllReduce.
enum class ReduceOp { kSum, kMax };

// A mutable buffer: `count` elements of `dtype` at `data`, in `memory` (host, or CUDA memory,
// which only backends with devices accept).
struct Buffer {
  void* data = nullptr;
  size_t count = 0;
  core::DType dtype = core::DType::kF32;
  core::Device memory = core::Device::kHost;

  size_t bytes() const { return count * core::SizeOf(dtype); }
};

// A read-only buffer; every Buffer converts to one.
struct ConstBuffer {
  const void* data = nullptr;
  size_t count = 0;
  core::DType dtype = core::DType::kF32;
  core::Device memory = core::Device::kHost;

  ConstBuffer() = default;
  ConstBuffer(const void* data, size_t count, core::DType dtype, core::Device memory)
      : data(data), count(count), dtype(dtype), memory(memory) {}
  ConstBuffer(const Buffer& buffer)  // NOLINT: implicit, as span<T> -> span<const T>.
      : data(buffer.data), count(buffer.count), dtype(buffer.dtype), memory(buffer.memory) {}

  size_t bytes() const { return count * core::SizeOf(dtype); }
};

// "4 x f32": a count and a dtype, for error messages.
inline std::string Shape(size_t count, core::DType dtype) {
  return std::to_string(count) + " x " + std::string(core::Name(dtype));
}

// Host buffers over a span of a supported element type (float, BFloat16, int32_t, int64_t,
// uint8_t).
template <typename T>
Buffer HostBuffer(absl::Span<T> values) {
  static_assert(!std::is_const_v<T>, "use ConstHostBuffer for read-only data");
  return Buffer{values.data(), values.size(), core::DTypeOf<T>(), core::Device::kHost};
}
// A host buffer over a mutable contiguous container of T (std::vector<T>, std::array<T, N>, ...),
// which absl::Span<T> takes only explicitly.
template <typename T, typename Container>
requires(!std::is_same_v<std::remove_cv_t<Container>, absl::Span<T>>) Buffer
    HostBuffer(Container& values) {
  return HostBuffer(absl::Span<T>(values));
}
template <typename T>
ConstBuffer ConstHostBuffer(absl::Span<const T> values) {
  return ConstBuffer(values.data(), values.size(), core::DTypeOf<T>(), core::Device::kHost);
}

// One send of a batched point-to-point call: `buffer` goes to rank `peer` with `tag`.
struct SendOp {
  ConstBuffer buffer;
  int peer = 0;
  int tag = 0;
};

// One receive of a batched point-to-point call: `buffer` is filled from rank `peer` with `tag`.
struct RecvOp {
  Buffer buffer;
  int peer = 0;
  int tag = 0;
};

}  // namespace comm

#endif  // COMM_BUFFER_H_
