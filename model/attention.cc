#include "model/attention.h"

#include <cmath>

#include "core/check.h"
#include "model/rope.h"

namespace model {

template <typename T>
Attention<T>::Attention(const std::string& prefix, int64_t hidden, int64_t num_heads,
                        int64_t head_dim, double rope_theta)
    : num_heads_(num_heads),
      head_dim_(head_dim),
      rope_theta_(rope_theta),
      q_proj_(prefix + "q_proj.weight", hidden, num_heads * head_dim),
      k_proj_(prefix + "k_proj.weight", hidden, num_heads * head_dim),
      v_proj_(prefix + "v_proj.weight", hidden, num_heads * head_dim),
      o_proj_(prefix + "o_proj.weight", num_heads * head_dim, hidden) {}

template <typename T>
std::vector<Param<T>*> Attention<T>::Params() {
  return {&q_proj_.weight(), &k_proj_.weight(), &v_proj_.weight(), &o_proj_.weight()};
}

template <typename T>
Matrix<T> Attention<T>::Forward(const Matrix<T>& x, int64_t seq_len, Context* ctx) const {
  DSMOE_CHECK(seq_len > 0 && x.rows() % seq_len == 0, "Attention: ", x.rows(),
              " tokens are not whole sequences of ", seq_len);
  Matrix<T> q = q_proj_.Forward(x, &ctx->q_proj);
  Matrix<T> k = k_proj_.Forward(x, &ctx->k_proj);
  ApplyRope(&q, num_heads_, head_dim_, seq_len, rope_theta_, /*inverse=*/false);
  ApplyRope(&k, num_heads_, head_dim_, seq_len, rope_theta_, /*inverse=*/false);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim_)));
  const Matrix<T> o =
      AttentionCoreForward(std::move(q), std::move(k), v_proj_.Forward(x, &ctx->v_proj), num_heads_,
                           seq_len, scale, &ctx->core);
  return o_proj_.Forward(o, &ctx->o_proj);
}

template <typename T>
Matrix<T> Attention<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  const int64_t seq_len = ctx->core.seq_len;
  Matrix<T> dq, dk, dv;
  AttentionCoreBackward(o_proj_.BackwardInput(std::move(dy), &ctx->o_proj), &ctx->core, &dq, &dk,
                        &dv);
  ApplyRope(&dq, num_heads_, head_dim_, seq_len, rope_theta_, /*inverse=*/true);
  ApplyRope(&dk, num_heads_, head_dim_, seq_len, rope_theta_, /*inverse=*/true);
  Matrix<T> dx = q_proj_.BackwardInput(std::move(dq), &ctx->q_proj);
  dx += k_proj_.BackwardInput(std::move(dk), &ctx->k_proj);
  dx += v_proj_.BackwardInput(std::move(dv), &ctx->v_proj);
  return dx;
}

template <typename T>
void Attention<T>::BackwardWeight(Context* ctx) {
  q_proj_.BackwardWeight(&ctx->q_proj);
  k_proj_.BackwardWeight(&ctx->k_proj);
  v_proj_.BackwardWeight(&ctx->v_proj);
  o_proj_.BackwardWeight(&ctx->o_proj);
}

template class Attention<float>;
template class Attention<double>;

}  // namespace model
