// Rotary position embedding (RoPE) on the interleaved pairs of each head, as in DeepSeek-V3's
// reference (view_as_complex over pairs): for the pair (x[2i], x[2i+1]) of a head at position p,
// angle = p * inv_freq[i], and the pair is rotated by +angle (forward) or -angle (the backward of
// the forward, since a rotation's transpose is its inverse). Plain RoPE has
// inv_freq[i] = theta^(-2i / head_dim); with YaRN (ModelConfig's max_seq_len > original_seq_len)
// the frequencies are corrected as the reference's precompute_freqs_cis does.
#ifndef MODEL_ROPE_H_
#define MODEL_ROPE_H_

#include <cstdint>
#include <vector>

#include "model/config.pb.h"
#include "model/matrix.h"

namespace model {

// How an attention layer encodes positions: the RoPE inverse frequencies of its rotated width
// and the factor its softmax scale 1 / sqrt(qk head dim) is multiplied by (YaRN's mscale^2).
struct RopeSpec {
  std::vector<double> inv_freq;  // [rotated width / 2]
  double softmax_scale_factor = 1.0;

  // Plain RoPE over `head_dim` rotated dims with base `theta`, factor 1. CHECKs an even head_dim.
  static RopeSpec Plain(int64_t head_dim, double theta);
  // `config`'s RoPE over `head_dim` rotated dims (qk_rope_head_dim for MLA): plain, or with
  // YaRN when YarnEnabled(config): pair i's frequency f_i = theta^(-2i / d) becomes
  // f_i / rope_factor * (1 - s_i) + f_i * s_i with s_i = 1 - clamp((i - low) / (high - low), 0, 1),
  // where low = max(floor(c(beta_fast)), 0), high = min(ceil(c(beta_slow)), d - 1) and
  // c(r) = d ln(original_seq_len / (2 pi r)) / (2 ln theta) (high gets + 0.001 when equal to
  // low), and the factor is AttentionScaleFactor(config). Computed in double (the reference
  // computes them in float32). `config` must have passed ValidateConfig.
  static RopeSpec FromConfig(const ModelConfig& config, int64_t head_dim);
};

// Rotates x [tokens, num_heads * head_dim] in place by inv_freq [head_dim / 2]. Token t is at
// position t % seq_len (tokens hold whole sequences of seq_len back to back). CHECKs the shapes,
// an even head_dim, and that seq_len divides the token count.
template <typename T>
void ApplyRope(Matrix<T>* x, int64_t num_heads, int64_t head_dim, int64_t seq_len,
               const std::vector<double>& inv_freq, bool inverse);

// Plain RoPE: ApplyRope with RopeSpec::Plain(head_dim, theta).inv_freq.
template <typename T>
void ApplyRope(Matrix<T>* x, int64_t num_heads, int64_t head_dim, int64_t seq_len, double theta,
               bool inverse);

}  // namespace model

#endif  // MODEL_ROPE_H_
