// Causal multi-head self-attention with RoPE on queries and keys:
//   q, k, v = x Wq^T, x Wk^T, x Wv^T; rotate q and k;
//   per head o = softmax(q k^T / sqrt(d) * f + mask) v; y = o Wo^T, where the RoPE frequencies and
//   the factor f (1, or YaRN's mscale^2) come from a RopeSpec (model/rope.h).
// Tokens hold whole sequences of seq_len back to back; attention stays inside each sequence.
#ifndef MODEL_ATTENTION_H_
#define MODEL_ATTENTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/attention_core.h"
#include "model/linear.h"
#include "model/matrix.h"
#include "model/rope.h"

namespace model {

// Forward and BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight writes the gradients and must not race with another BackwardWeight.
template <typename T>
class Attention {
 public:
  struct Context {
    typename Linear<T>::Context q_proj, k_proj, v_proj, o_proj;
    AttentionCoreContext<T> core;  // q and k after RoPE
  };

  // Weights named prefix + "q_proj.weight" etc. (prefix e.g. "model.layers.0.self_attn.").
  // `rope` covers head_dim dims (CHECKed).
  Attention(const std::string& prefix, int64_t hidden, int64_t num_heads, int64_t head_dim,
            RopeSpec rope);
  // Plain RoPE with base rope_theta: RopeSpec::Plain(head_dim, rope_theta).
  Attention(const std::string& prefix, int64_t hidden, int64_t num_heads, int64_t head_dim,
            double rope_theta);

  // x [tokens, hidden] -> [tokens, hidden]. CHECKs that seq_len divides the token count.
  Matrix<T> Forward(const Matrix<T>& x, int64_t seq_len, Context* ctx) const;
  // dy [tokens, hidden] -> dx [tokens, hidden]; frees what BackwardWeight does not need.
  Matrix<T> BackwardInput(Matrix<T> dy, Context* ctx) const;
  // Accumulates the four projections' gradients; frees ctx.
  void BackwardWeight(Context* ctx);

  // The q, k, v and o projection weights (owned by this layer; valid while it lives).
  std::vector<Param<T>*> Params();

 private:
  int64_t num_heads_;
  int64_t head_dim_;
  RopeSpec rope_;
  Linear<T> q_proj_, k_proj_, v_proj_, o_proj_;
};

}  // namespace model

#endif  // MODEL_ATTENTION_H_
