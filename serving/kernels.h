// Batch-invariant CPU kernels of the serving forward: every output element is computed by the same
// fixed-order dot product whatever the other rows of the batch are, so a request's logits are
// bit-identical alone and batched with others (BLAS GEMMs do not promise this: OpenBLAS switches
// to a matrix-vector path at one row and blocks larger batches differently).
#ifndef SERVING_KERNELS_H_
#define SERVING_KERNELS_H_

#include <cstdint>

#include "core/thread_pool.h"
#include "model/matrix.h"

namespace serving {

using Mat = model::Matrix<float>;

// sum a[i] * b[i] over i < n, in a fixed order that depends on n only: eight strided partial sums
// combined pairwise, then the tail.
float Dot(const float* a, const float* b, int64_t n);

// y [rows, out] = x [rows, in] w^T for w [out, in]: y(i, j) = Dot(x.row(i), w.row(j)). Work is
// split over output columns on `pool` (null: the calling thread only); the split does not change
// any value. CHECKs x.cols() == w.cols().
Mat MatMulT(const Mat& x, const Mat& w, core::ThreadPool* pool);

// RMSNorm of every row: x / sqrt(mean(x^2) + eps) * scale [1, width].
Mat RmsNormRows(const Mat& x, const Mat& scale, float eps);

// silu(gate) * up, elementwise (the SwiGLU activation), with std::exp on every element.
Mat SwiGlu(const Mat& gate, const Mat& up);

}  // namespace serving

#endif  // SERVING_KERNELS_H_
