#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "model/config.h"

namespace model {

RopeSpec RopeSpec::Plain(int64_t head_dim, double theta) {
  DSMOE_CHECK(head_dim > 0 && head_dim % 2 == 0, "RoPE: head_dim ", head_dim,
              " is not positive and even");
  RopeSpec spec;
  spec.inv_freq.resize(head_dim / 2);
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    spec.inv_freq[i] =
        std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
  }
  return spec;
}

RopeSpec RopeSpec::FromConfig(const ModelConfig& config, int64_t head_dim) {
  RopeSpec spec = Plain(head_dim, config.rope_theta());
  if (!YarnEnabled(config)) return spec;
  const double dim = static_cast<double>(head_dim);
  const double base = config.rope_theta();
  // The dim (in [0, d)) whose pair turns num_rotations times over the original context.
  const auto correction_dim = [&](double num_rotations) {
    return dim * std::log(config.original_seq_len() / (num_rotations * 2 * M_PI)) /
           (2 * std::log(base));
  };
  const double low = std::max(std::floor(correction_dim(config.beta_fast())), 0.0);
  double high = std::min(std::ceil(correction_dim(config.beta_slow())), dim - 1);
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double smooth = 1 - ramp;
    const double f = spec.inv_freq[i];
    spec.inv_freq[i] = f / config.rope_factor() * (1 - smooth) + f * smooth;
  }
  spec.softmax_scale_factor = AttentionScaleFactor(config);
  return spec;
}

template <typename T>
void ApplyRope(Matrix<T>* x, int64_t num_heads, int64_t head_dim, int64_t seq_len,
               const std::vector<double>& inv_freq, bool inverse) {
  DSMOE_CHECK(head_dim % 2 == 0 && x->cols() == num_heads * head_dim, "RoPE: width ", x->cols(),
              " for ", num_heads, " heads of ", head_dim);
  DSMOE_CHECK(static_cast<int64_t>(inv_freq.size()) == head_dim / 2, "RoPE: ", inv_freq.size(),
              " frequencies for heads of ", head_dim);
  DSMOE_CHECK(seq_len > 0 && x->rows() % seq_len == 0, "RoPE: ", x->rows(),
              " tokens are not whole sequences of ", seq_len);
  const int64_t pairs = head_dim / 2;
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

template <typename T>
void ApplyRope(Matrix<T>* x, int64_t num_heads, int64_t head_dim, int64_t seq_len, double theta,
               bool inverse) {
  ApplyRope(x, num_heads, head_dim, seq_len, RopeSpec::Plain(head_dim, theta).inv_freq, inverse);
}

template void ApplyRope<float>(Matrix<float>*, int64_t, int64_t, int64_t,
                               const std::vector<double>&, bool);
template void ApplyRope<double>(Matrix<double>*, int64_t, int64_t, int64_t,
                                const std::vector<double>&, bool);
template void ApplyRope<float>(Matrix<float>*, int64_t, int64_t, int64_t, double, bool);
template void ApplyRope<double>(Matrix<double>*, int64_t, int64_t, int64_t, double, bool);

}  // namespace model
