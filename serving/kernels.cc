#include "serving/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"

namespace serving {

namespace {

// Eight partial sums as two 4-lane vectors (GCC's vector extension, SSE on x86-64): lane k of
// lo, hi holds the partial sum of the elements i with i % 8 == k, k + 4. Written out so that the
// compiler vectorizes it the same way at every call: the order of additions is fixed by the code.
typedef float V4 __attribute__((vector_size(16)));

inline V4 Load(const float* p) {
  V4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)) + tail.
inline float Combine(V4 lo, V4 hi, float tail) {
  const V4 s = lo + hi;
  return ((s[0] + s[1]) + (s[2] + s[3])) + tail;
}

}  // namespace

float Dot(const float* a, const float* b, int64_t n) {
  V4 lo = {0, 0, 0, 0}, hi = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    lo += Load(a + i) * Load(b + i);
    hi += Load(a + i + 4) * Load(b + i + 4);
  }
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return Combine(lo, hi, tail);
}

namespace {

// Dot(a, w_r) for four rows w_r at once, sharing the loads of a; each result is summed in exactly
// Dot's order, so it equals Dot bit for bit.
void Dot4(const float* a, const float* const w[4], int64_t n, float* out) {
  V4 lo[4] = {}, hi[4] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const V4 al = Load(a + i), ah = Load(a + i + 4);
    for (int r = 0; r < 4; ++r) {
      lo[r] += al * Load(w[r] + i);
      hi[r] += ah * Load(w[r] + i + 4);
    }
  }
  for (int r = 0; r < 4; ++r) {
    float tail = 0;
    for (int64_t j = i; j < n; ++j) tail += a[j] * w[r][j];
    out[r] = Combine(lo[r], hi[r], tail);
  }
}

}  // namespace

Mat MatMulT(const Mat& x, const Mat& w, core::ThreadPool* pool) {
  DSMOE_CHECK(x.cols() == w.cols(), "MatMulT: x ", x.rows(), "x", x.cols(), ", w ", w.rows(), "x",
              w.cols());
  const int64_t rows = x.rows();
  const int64_t in = x.cols();
  const int64_t out = w.rows();
  Mat y(rows, out);
  const auto columns = [&](int64_t begin, int64_t end) {
    int64_t j = begin;
    float out[4];
    for (; j + 4 <= end; j += 4) {
      const float* const rows4[4] = {w.row(j).data(), w.row(j + 1).data(), w.row(j + 2).data(),
                                     w.row(j + 3).data()};
      for (int64_t i = 0; i < rows; ++i) {
        Dot4(x.row(i).data(), rows4, in, out);
        for (int r = 0; r < 4; ++r) y(i, j + r) = out[r];
      }
    }
    for (; j < end; ++j) {
      const float* wj = w.row(j).data();
      for (int64_t i = 0; i < rows; ++i) y(i, j) = Dot(x.row(i).data(), wj, in);
    }
  };
  if (pool == nullptr || pool->num_threads() <= 1 || rows * in * out < (1 << 16) || out < 16) {
    columns(0, out);
  } else {
    pool->ParallelFor(0, out, columns);
  }
  return y;
}

Mat RmsNormRows(const Mat& x, const Mat& scale, float eps) {
  DSMOE_CHECK(scale.cols() == x.cols(), "RmsNormRows: width ", x.cols(), " for a scale of ",
              scale.cols());
  Mat y(x.rows(), x.cols());
  const int64_t width = x.cols();
  for (int64_t i = 0; i < x.rows(); ++i) {
    const float* row = x.row(i).data();
    const float mean = Dot(row, row, width) / static_cast<float>(width);
    const float inv = 1.0f / std::sqrt(mean + eps);
    for (int64_t c = 0; c < width; ++c) y(i, c) = row[c] * inv * scale(0, c);
  }
  return y;
}

Mat SwiGlu(const Mat& gate, const Mat& up) {
  DSMOE_CHECK(gate.rows() == up.rows() && gate.cols() == up.cols(), "SwiGlu: shapes differ");
  // Not Eigen's exp: its vector and scalar paths differ in the last bit, and which elements take
  // which path depends on the matrix's size, hence on the batch.
  Mat y(gate.rows(), gate.cols());
  const float* g = gate.data();
  const float* u = up.data();
  float* out = y.data();
  for (int64_t i = 0; i < gate.size(); ++i) out[i] = g[i] / (1.0f + Exp(-g[i])) * u[i];
  return y;
}

float SoftmaxNumerators(absl::Span<float> scores) {
  float max = -INFINITY;
  for (float score : scores) max = std::max(max, score);
  float sum = 0;
  for (float& score : scores) {
    score = Exp(score - max);
    sum += score;
  }
  return sum;
}

}  // namespace serving
