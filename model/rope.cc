#include "model/rope.h"

#include <cmath>
#include <vector>

#include "core/check.h"

namespace model {

template <typename T>
void ApplyRope(Matrix<T>* x, int64_t num_heads, int64_t head_dim, int64_t seq_len, double theta,
               bool inverse) {
  DSMOE_CHECK(head_dim % 2 == 0 && x->cols() == num_heads * head_dim, "RoPE: width ", x->cols(),
              " for ", num_heads, " heads of ", head_dim);
  DSMOE_CHECK(seq_len > 0 && x->rows() % seq_len == 0, "RoPE: ", x->rows(),
              " tokens are not whole sequences of ", seq_len);
  const int64_t pairs = head_dim / 2;
  std::vector<double> inv_freq(pairs);
  for (int64_t i = 0; i < pairs; ++i) {
    inv_freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
  }
  const double sign = inverse ? -1.0 : 1.0;
  for (int64_t p = 0; p < seq_len; ++p) {
    for (int64_t i = 0; i < pairs; ++i) {
      const double angle = static_cast<double>(p) * inv_freq[i];
      const T c = static_cast<T>(std::cos(angle));
      const T s = static_cast<T>(sign * std::sin(angle));
      for (int64_t t = p; t < x->rows(); t += seq_len) {
        T* row = x->row(t).data();
        for (int64_t h = 0; h < num_heads; ++h) {
          T* pair = row + h * head_dim + 2 * i;
          const T a = pair[0];
          const T b = pair[1];
          pair[0] = a * c - b * s;
          pair[1] = a * s + b * c;
        }
      }
    }
  }
}

template void ApplyRope<float>(Matrix<float>*, int64_t, int64_t, int64_t, double, bool);
template void ApplyRope<double>(Matrix<double>*, int64_t, int64_t, int64_t, double, bool);

}  // namespace model
