// Tensor (owning) and TensorView (non-owning): dense, row-major, contiguous n-d arrays of one
// DType on one Device.
//
// A Tensor owns its buffer through the Allocator that made it; it is move-only, and the only deep
// copy is the explicit Clone(). A TensorView is a (pointer, dtype, shape, device) that borrows
// memory: it is cheap to copy and valid only while the memory it points to lives. Typed access
// (data<T>(), at<T>()) checks the dtype; element access on the host only.
//
// Thread-safety: as for std::vector. Concurrent reads are safe; writes need external sync.
#ifndef CORE_TENSOR_H_
#define CORE_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/memory.h"

namespace core {

// Dimensions of a tensor, outermost first. Every dimension is >= 0.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t dim(int i) const;  // CHECKs 0 <= i < rank(); negative i counts from the end.
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t num_elements() const;  // 1 for rank 0.
  std::string ToString() const;  // "[2, 3]"

  friend bool operator==(const Shape& a, const Shape& b) { return a.dims_ == b.dims_; }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

 private:
  std::vector<int64_t> dims_;
};

class TensorView {
 public:
  // An empty view: shape [0], no data.
  TensorView() = default;
  TensorView(void* data, DType dtype, Shape shape, Device device = Device::kHost)
      : data_(data), dtype_(dtype), shape_(std::move(shape)), device_(device) {}

  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.dim(i); }
  int64_t num_elements() const { return shape_.num_elements(); }
  size_t num_bytes() const { return num_elements() * SizeOf(dtype_); }
  void* raw_data() const { return data_; }

  // The buffer as T*; CHECKs that T matches dtype().
  template <typename T>
  T* data() const {
    CheckType(DTypeOf<T>());
    return static_cast<T*>(data_);
  }

  // Element at a full multi-index; CHECKs dtype, host memory, rank and bounds.
  template <typename T>
  T& at(std::initializer_list<int64_t> index) const {
    CheckType(DTypeOf<T>());
    return static_cast<T*>(data_)[Offset(index)];
  }

  // A view of the same bytes with another shape of equal element count (CHECKed).
  TensorView Reshaped(Shape shape) const;
  // Rows [begin, end) of the outermost dimension; CHECKs 0 <= begin <= end <= dim(0).
  TensorView Slice(int64_t begin, int64_t end) const;

 private:
  void CheckType(DType expected) const;
  int64_t Offset(std::initializer_list<int64_t> index) const;

  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  Shape shape_{0};
  Device device_ = Device::kHost;
};

class Tensor {
 public:
  // An empty tensor (shape [0]); also the state of a moved-from tensor.
  Tensor() = default;
  ~Tensor();
  Tensor(Tensor&& other) noexcept;
  Tensor& operator=(Tensor&& other) noexcept;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  // An uninitialised tensor; RESOURCE_EXHAUSTED if the allocator fails. CHECKs allocator != null.
  static absl::StatusOr<Tensor> Empty(Shape shape, DType dtype,
                                      Allocator* allocator = HostAllocator());
  // A host tensor filled with zeros. DSMOE_CHECK-fails if host memory is exhausted.
  static Tensor Zeros(Shape shape, DType dtype);
  // A host f32 tensor holding `values` (row-major); CHECKs values.size() == num_elements.
  static Tensor FromVector(Shape shape, const std::vector<float>& values);

  // A deep copy into host memory (host tensors only; device copies live in //core:cuda_memory).
  Tensor Clone() const;

  TensorView view() const { return view_; }
  DType dtype() const { return view_.dtype(); }
  Device device() const { return view_.device(); }
  const Shape& shape() const { return view_.shape(); }
  int64_t dim(int i) const { return view_.dim(i); }
  int64_t num_elements() const { return view_.num_elements(); }
  size_t num_bytes() const { return view_.num_bytes(); }
  template <typename T>
  T* data() const {
    return view_.data<T>();
  }
  template <typename T>
  T& at(std::initializer_list<int64_t> index) const {
    return view_.at<T>(index);
  }

 private:
  Tensor(TensorView view, Allocator* allocator) : view_(std::move(view)), allocator_(allocator) {}
  void Release();

  TensorView view_;
  Allocator* allocator_ = nullptr;
};

// Copies src's bytes into dst; both on the host, same dtype and element count (CHECKed).
void CopyHost(const TensorView& src, const TensorView& dst);

}  // namespace core

#endif  // CORE_TENSOR_H_
