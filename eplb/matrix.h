// A small owning row-major matrix for EPLB's inputs and outputs (loads, placements). EPLB knows
// nothing of device tensors; this is plain host memory with accessors bounds-checked by
// DSMOE_DCHECK (debug builds only: they are on hot paths).
#ifndef EPLB_MATRIX_H_
#define EPLB_MATRIX_H_

#include <cstddef>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "core/check.h"

namespace eplb {

// A rows x cols matrix stored row-major in one std::vector. Copyable (a deep copy) and movable.
// Not synchronized: concurrent reads are safe, a write needs exclusive access.
template <typename T>
class Matrix {
 public:
  Matrix() = default;
  // Precondition: rows >= 0 and cols >= 0. Every element starts as `fill`.
  Matrix(int rows, int cols, T fill = T())
      : rows_(rows), cols_(cols), data_(static_cast<size_t>(rows) * cols, fill) {
    DSMOE_CHECK(rows >= 0 && cols >= 0, "matrix of ", rows, " x ", cols);
  }
  // Precondition: data.size() == rows * cols. Takes ownership of `data`.
  Matrix(int rows, int cols, std::vector<T> data)
      : rows_(rows), cols_(cols), data_(std::move(data)) {
    DSMOE_CHECK(rows >= 0 && cols >= 0 && data_.size() == static_cast<size_t>(rows) * cols,
                "matrix of ", rows, " x ", cols, " from ", data_.size(), " elements");
  }

  int rows() const { return rows_; }
  int cols() const { return cols_; }

  // Precondition: 0 <= r < rows(), 0 <= c < cols().
  T& operator()(int r, int c) { return data_[Index(r, c)]; }
  const T& operator()(int r, int c) const { return data_[Index(r, c)]; }

  // Row r as a view into this matrix; valid until the matrix is destroyed or reassigned.
  // Precondition: 0 <= r < rows().
  absl::Span<T> row(int r) { return {data_.data() + RowStart(r), static_cast<size_t>(cols_)}; }
  absl::Span<const T> row(int r) const {
    return {data_.data() + RowStart(r), static_cast<size_t>(cols_)};
  }

  // All elements, row-major.
  const std::vector<T>& data() const { return data_; }

  friend bool operator==(const Matrix&, const Matrix&) = default;

 private:
  size_t RowStart(int r) const {
    DSMOE_DCHECK(r >= 0 && r < rows_, "row ", r, " of ", rows_);
    return static_cast<size_t>(r) * cols_;
  }
  size_t Index(int r, int c) const {
    DSMOE_DCHECK(c >= 0 && c < cols_, "column ", c, " of ", cols_);
    return RowStart(r) + c;
  }

  int rows_ = 0;
  int cols_ = 0;
  std::vector<T> data_;
};

}  // namespace eplb

#endif  // EPLB_MATRIX_H_
