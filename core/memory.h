// Where tensor bytes live, and the allocators that own them.
//
// An Allocator hands out raw, uninitialised, 64-byte-aligned buffers on one device. HostAllocator()
// is always available; the CUDA allocator lives in //core:cuda_memory (built with --config=cuda),
// so code that does not touch a GPU never links CUDA. Allocators are thread-safe and outlive every
// buffer they hand out (the ones returned here are process-wide singletons).
#ifndef CORE_MEMORY_H_
#define CORE_MEMORY_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"

namespace core {

enum class Device : uint8_t { kHost, kCuda };

// "host" or "cuda".
const char* Name(Device device);

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns a buffer of `bytes` bytes (nullptr for 0 bytes), or RESOURCE_EXHAUSTED.
  virtual absl::StatusOr<void*> Allocate(size_t bytes) = 0;
  // Frees a buffer from Allocate of this allocator; nullptr is ignored.
  virtual void Free(void* data) = 0;
  virtual Device device() const = 0;
};

// Host memory from aligned operator new. Never null.
Allocator* HostAllocator();

inline constexpr size_t kAlignment = 64;

}  // namespace core

#endif  // CORE_MEMORY_H_
