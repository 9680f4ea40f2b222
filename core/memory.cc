#include "core/memory.h"

#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace core {

const char* Name(Device device) { return device == Device::kHost ? "host" : "cuda"; }

namespace {

class HostAllocatorImpl final : public Allocator {
 public:
  absl::StatusOr<void*> Allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    void* data = ::operator new(bytes, std::align_val_t(kAlignment), std::nothrow);
    if (data == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("host allocation of ", bytes, " bytes failed"));
    }
    return data;
  }
  void Free(void* data) override {
    if (data != nullptr) ::operator delete(data, std::align_val_t(kAlignment));
  }
  Device device() const override { return Device::kHost; }
};

}  // namespace

Allocator* HostAllocator() {
  static HostAllocatorImpl* const allocator = new HostAllocatorImpl();
  return allocator;
}

}  // namespace core
