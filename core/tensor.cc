#include "core/tensor.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/check.h"

namespace core {

int64_t Shape::dim(int i) const {
  const int index = i < 0 ? i + rank() : i;
  DSMOE_CHECK(index >= 0 && index < rank(), "dim ", i, " of shape ", ToString());
  return dims_[index];
}

int64_t Shape::num_elements() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

std::string Shape::ToString() const { return absl::StrCat("[", absl::StrJoin(dims_, ", "), "]"); }

void TensorView::CheckType(DType expected) const {
  DSMOE_CHECK(expected == dtype_, "accessed a ", Name(dtype_), " tensor as ", Name(expected));
}

int64_t TensorView::Offset(std::initializer_list<int64_t> index) const {
  DSMOE_CHECK(device_ == Device::kHost, "element access to device memory");
  DSMOE_CHECK(static_cast<int>(index.size()) == shape_.rank(), "index of rank ", index.size(),
              " into shape ", shape_.ToString());
  int64_t offset = 0;
  int axis = 0;
  for (int64_t i : index) {
    const int64_t extent = shape_.dims()[axis++];
    DSMOE_CHECK(i >= 0 && i < extent, "index ", i, " out of ", shape_.ToString());
    offset = offset * extent + i;
  }
  return offset;
}

TensorView TensorView::Reshaped(Shape shape) const {
  DSMOE_CHECK(shape.num_elements() == num_elements(), "reshape ", shape_.ToString(), " to ",
              shape.ToString());
  return TensorView(data_, dtype_, std::move(shape), device_);
}

TensorView TensorView::Slice(int64_t begin, int64_t end) const {
  const int64_t rows = shape_.dim(0);
  DSMOE_CHECK(begin >= 0 && begin <= end && end <= rows, "slice [", begin, ", ", end, ") of ",
              shape_.ToString());
  std::vector<int64_t> dims = shape_.dims();
  dims[0] = end - begin;
  const size_t row_bytes = rows == 0 ? 0 : num_bytes() / rows;
  return TensorView(static_cast<char*>(data_) + begin * row_bytes, dtype_, Shape(std::move(dims)),
                    device_);
}

Tensor::~Tensor() { Release(); }

Tensor::Tensor(Tensor&& other) noexcept : view_(other.view_), allocator_(other.allocator_) {
  other.view_ = TensorView();
  other.allocator_ = nullptr;
}

Tensor& Tensor::operator=(Tensor&& other) noexcept {
  if (this != &other) {
    Release();
    view_ = other.view_;
    allocator_ = other.allocator_;
    other.view_ = TensorView();
    other.allocator_ = nullptr;
  }
  return *this;
}

void Tensor::Release() {
  if (allocator_ != nullptr) allocator_->Free(view_.raw_data());
  allocator_ = nullptr;
}

absl::StatusOr<Tensor> Tensor::Empty(Shape shape, DType dtype, Allocator* allocator) {
  DSMOE_CHECK(allocator != nullptr, "null allocator");
  for (int64_t d : shape.dims()) DSMOE_CHECK(d >= 0, "negative dimension in ", shape.ToString());
  const size_t bytes = shape.num_elements() * SizeOf(dtype);
  absl::StatusOr<void*> data = allocator->Allocate(bytes);
  if (!data.ok()) return data.status();
  return Tensor(TensorView(*data, dtype, std::move(shape), allocator->device()), allocator);
}

Tensor Tensor::Zeros(Shape shape, DType dtype) {
  absl::StatusOr<Tensor> tensor = Empty(std::move(shape), dtype);
  DSMOE_CHECK(tensor.ok(), tensor.status().message());
  if (tensor->num_bytes() > 0) std::memset(tensor->view().raw_data(), 0, tensor->num_bytes());
  return *std::move(tensor);
}

Tensor Tensor::FromVector(Shape shape, const std::vector<float>& values) {
  Tensor tensor = Zeros(std::move(shape), DType::kF32);
  DSMOE_CHECK(static_cast<int64_t>(values.size()) == tensor.num_elements(), values.size(),
              " values for shape ", tensor.shape().ToString());
  if (!values.empty()) std::memcpy(tensor.data<float>(), values.data(), tensor.num_bytes());
  return tensor;
}

Tensor Tensor::Clone() const {
  Tensor copy = Zeros(shape(), dtype());
  CopyHost(view_, copy.view());
  return copy;
}

void CopyHost(const TensorView& src, const TensorView& dst) {
  DSMOE_CHECK(src.device() == Device::kHost && dst.device() == Device::kHost,
              "CopyHost off the host");
  DSMOE_CHECK(src.dtype() == dst.dtype() && src.num_elements() == dst.num_elements(), "copy ",
              Name(src.dtype()), src.shape().ToString(), " into ", Name(dst.dtype()),
              dst.shape().ToString());
  if (src.num_bytes() > 0) std::memcpy(dst.raw_data(), src.raw_data(), src.num_bytes());
}

}  // namespace core
