#include "serving/kernels.h"

#include <cmath>

#include "core/check.h"

namespace serving {

float Dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  }
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) + tail;
}

namespace {

// Dot(a, w0..w3) for four rows of w at once, sharing the loads of a; each result is summed in
// exactly Dot's order, so it equals Dot bit for bit.
void Dot4(const float* a, const float* w0, const float* w1, const float* w2, const float* w3,
          int64_t n, float* out) {
  float acc[4][8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const float x = a[i + k];
      acc[0][k] += x * w0[i + k];
      acc[1][k] += x * w1[i + k];
      acc[2][k] += x * w2[i + k];
      acc[3][k] += x * w3[i + k];
    }
  }
  const float* w[4] = {w0, w1, w2, w3};
  for (int r = 0; r < 4; ++r) {
    float tail = 0;
    for (int64_t j = i; j < n; ++j) tail += a[j] * w[r][j];
    const float* c = acc[r];
    out[r] = (((c[0] + c[4]) + (c[1] + c[5])) + ((c[2] + c[6]) + (c[3] + c[7]))) + tail;
  }
}

}  // namespace

Mat MatMulT(const Mat& x, const Mat& w, core::ThreadPool* pool) {
  CHECK(x.cols() == w.cols(), "MatMulT: x ", x.rows(), "x", x.cols(), ", w ", w.rows(), "x",
        w.cols());
  const int64_t rows = x.rows();
  const int64_t in = x.cols();
  const int64_t out = w.rows();
  Mat y(rows, out);
  const auto columns = [&](int64_t begin, int64_t end) {
    int64_t j = begin;
    float out[4];
    for (; j + 4 <= end; j += 4) {
      for (int64_t i = 0; i < rows; ++i) {
        Dot4(x.row(i).data(), w.row(j).data(), w.row(j + 1).data(), w.row(j + 2).data(),
             w.row(j + 3).data(), in, out);
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
  CHECK(scale.cols() == x.cols(), "RmsNormRows: width ", x.cols(), " for a scale of ",
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
  CHECK(gate.rows() == up.rows() && gate.cols() == up.cols(), "SwiGlu: shapes differ");
  // A scalar loop: Eigen's vectorized exp differs from std::exp in the last bit, and which
  // elements it vectorizes depends on the matrix's size, hence on the batch.
  Mat y(gate.rows(), gate.cols());
  const float* g = gate.data();
  const float* u = up.data();
  float* out = y.data();
  for (int64_t i = 0; i < gate.size(); ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  return y;
}

}  // namespace serving
