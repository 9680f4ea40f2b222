// Multi-head latent attention (MLA) of DeepSeek-V2/V3, in its plain (non-absorbed) form:
//   q = q_b(RMSNorm(q_a(x)))  (or q_proj(x) without a query bottleneck)  [tokens, heads * (n + r)]
//   [c | k_rope] = kv_a(x); [k_nope | v] per head = kv_b(RMSNorm(c))
//   q's last r dims per head and k_rope (one head, shared) are rotated by RoPE;
//   k = [k_nope | k_rope] per head; o = causal softmax attention (scale 1/sqrt(n + r), times
//   YaRN's mscale^2 when the RopeSpec carries it);
//   y = o_proj(o)
// Weight names follow DeepSeek-V3's checkpoints (q_a_proj, q_a_layernorm, q_b_proj,
// kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj).
#ifndef MODEL_MLA_H_
#define MODEL_MLA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/attention_core.h"
#include "model/config.pb.h"
#include "model/linear.h"
#include "model/matrix.h"
#include "model/rms_norm.h"
#include "model/rope.h"

namespace model {

// Forward and BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight writes the gradients and must not race with another BackwardWeight.
template <typename T>
class Mla {
 public:
  struct Context {
    typename Linear<T>::Context q_a, q_b, q, kv_a, kv_b, o;
    typename RmsNorm<T>::Context q_norm, kv_norm;
    AttentionCoreContext<T> core;
  };

  // Weights named prefix + "q_a_proj.weight" etc. (prefix e.g. "model.layers.0.self_attn.").
  // `mla` must have passed ValidateConfig; `rope` covers qk_rope_head_dim dims (CHECKed).
  Mla(const std::string& prefix, int64_t hidden, int64_t num_heads, const MlaConfig& mla,
      RopeSpec rope, double rms_norm_eps);
  // Plain RoPE with base rope_theta: RopeSpec::Plain(qk_rope_head_dim, rope_theta).
  Mla(const std::string& prefix, int64_t hidden, int64_t num_heads, const MlaConfig& mla,
      double rope_theta, double rms_norm_eps);

  // x [tokens, hidden] -> [tokens, hidden]. CHECKs that seq_len divides the token count.
  Matrix<T> Forward(const Matrix<T>& x, int64_t seq_len, Context* ctx) const;
  // dy [tokens, hidden] -> dx [tokens, hidden].
  Matrix<T> BackwardInput(Matrix<T> dy, Context* ctx) const;
  // Accumulates every projection's and norm's gradient; frees ctx.
  void BackwardWeight(Context* ctx);

  // The query path, the key/value path, then o_proj (owned by this layer).
  std::vector<Param<T>*> Params();

 private:
  int64_t num_heads_;
  int64_t nope_;      // qk_nope_head_dim
  int64_t rope_dim_;  // qk_rope_head_dim
  int64_t v_dim_;
  int64_t kv_lora_;
  RopeSpec rope_;
  // With a query bottleneck: q_a_, q_norm_, q_b_; without: q_.
  std::unique_ptr<Linear<T>> q_a_, q_b_, q_;
  std::unique_ptr<RmsNorm<T>> q_norm_;
  Linear<T> kv_a_;
  RmsNorm<T> kv_norm_;
  Linear<T> kv_b_;
  Linear<T> o_;
};

}  // namespace model

#endif  // MODEL_MLA_H_
