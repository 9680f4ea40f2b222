// Batch-invariant CPU kernels of the serving forward: every output element is computed by the same
// fixed-order dot product whatever the other rows of the batch are, so a request's logits are
// bit-identical alone and batched with others (BLAS GEMMs do not promise this: OpenBLAS switches
// to a matrix-vector path at one row and blocks larger batches differently).
#ifndef SERVING_KERNELS_H_
#define SERVING_KERNELS_H_

#include <cstdint>

#include "absl/types/span.h"
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

// e^x for float x, within 2 ulp of std::exp for x in [-87, 88] (Cephes' expf: rounding to
// n = round(x / ln 2), a degree-7 polynomial of the remainder, scaling by 2^n); inputs below -87
// give about 1e-38 rather than 0, above 88 about 1.7e38. Branch-free, so loops over it vectorize;
// the vector and scalar code compute the same operations, so every element gets the same bits
// wherever it sits in a batch.
inline float Exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float t = x * 1.44269504088896341f;
  const float n = static_cast<float>(static_cast<int32_t>(t + (t < 0 ? -0.5f : 0.5f)));
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = (p * r) * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

// The softmax's numerators, in place: scores[i] = Exp(scores[i] - max(scores)). Returns their
// sum, added in index order (the softmax is scores[i] / sum).
float SoftmaxNumerators(absl::Span<float> scores);

// silu(gate) * up, elementwise (the SwiGLU activation), with Exp on every element.
Mat SwiGlu(const Mat& gate, const Mat& up);

}  // namespace serving

#endif  // SERVING_KERNELS_H_
