// The weight-free core of causal multi-head attention, shared by the attention layers: per
// sequence of seq_len tokens and per head, o = softmax(q k^T * scale + causal mask) v. Queries
// and keys may be wider than values (as in MLA).
#ifndef MODEL_ATTENTION_CORE_H_
#define MODEL_ATTENTION_CORE_H_

#include <cstdint>

#include "model/matrix.h"

namespace model {

template <typename T>
struct AttentionCoreContext {
  int64_t num_heads = 0;
  int64_t seq_len = 0;
  T scale = 0;
  Matrix<T> q, k, v;  // as given to the forward
  Matrix<T> probs;    // [sequences * heads * seq_len, seq_len]: the masked softmax
};

// q, k [tokens, heads * qk_dim], v [tokens, heads * v_dim] -> o [tokens, heads * v_dim]. Takes q,
// k and v into ctx (no copy when moved in). CHECKs the shapes and that seq_len divides tokens.
template <typename T>
Matrix<T> AttentionCoreForward(Matrix<T> q, Matrix<T> k, Matrix<T> v, int64_t num_heads,
                               int64_t seq_len, T scale, AttentionCoreContext<T>* ctx);

// d_o [tokens, heads * v_dim] -> *dq, *dk, *dv (shaped as q, k, v). Frees ctx.
template <typename T>
void AttentionCoreBackward(const Matrix<T>& d_o, AttentionCoreContext<T>* ctx, Matrix<T>* dq,
                           Matrix<T>* dk, Matrix<T>* dv);

}  // namespace model

#endif  // MODEL_ATTENTION_CORE_H_
