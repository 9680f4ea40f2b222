#include "model/attention.h"

#include <cmath>
#include <limits>

#include "model/internal/check.h"
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
  MODEL_CHECK(seq_len > 0 && x.rows() % seq_len == 0, "Attention: ", x.rows(),
              " tokens are not whole sequences of ", seq_len);
  ctx->seq_len = seq_len;
  ctx->q = q_proj_.Forward(x, &ctx->q_proj);
  ctx->k = k_proj_.Forward(x, &ctx->k_proj);
  ctx->v = v_proj_.Forward(x, &ctx->v_proj);
  ApplyRope(&ctx->q, num_heads_, head_dim_, seq_len, rope_theta_, /*inverse=*/false);
  ApplyRope(&ctx->k, num_heads_, head_dim_, seq_len, rope_theta_, /*inverse=*/false);
  const int64_t sequences = x.rows() / seq_len;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim_)));
  ctx->probs.resize(sequences * num_heads_ * seq_len, seq_len);
  Matrix<T> o(x.rows(), num_heads_ * head_dim_);
  for (int64_t b = 0; b < sequences; ++b) {
    for (int64_t h = 0; h < num_heads_; ++h) {
      const auto q = ctx->q.block(b * seq_len, h * head_dim_, seq_len, head_dim_);
      const auto k = ctx->k.block(b * seq_len, h * head_dim_, seq_len, head_dim_);
      const auto v = ctx->v.block(b * seq_len, h * head_dim_, seq_len, head_dim_);
      auto p = ctx->probs.block((b * num_heads_ + h) * seq_len, 0, seq_len, seq_len);
      p.noalias() = (q * k.transpose()) * scale;
      for (int64_t i = 0; i < seq_len; ++i) {
        const T max = p.row(i).head(i + 1).maxCoeff();
        p.row(i).head(i + 1) = (p.row(i).head(i + 1).array() - max).exp().matrix();
        p.row(i).head(i + 1) /= p.row(i).head(i + 1).sum();
        p.row(i).tail(seq_len - i - 1).setZero();
      }
      o.block(b * seq_len, h * head_dim_, seq_len, head_dim_).noalias() = p * v;
    }
  }
  return o_proj_.Forward(o, &ctx->o_proj);
}

template <typename T>
Matrix<T> Attention<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  const Matrix<T> d_o = o_proj_.BackwardInput(std::move(dy), &ctx->o_proj);
  const int64_t seq_len = ctx->seq_len;
  const int64_t sequences = d_o.rows() / seq_len;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim_)));
  Matrix<T> dq(d_o.rows(), d_o.cols()), dk(d_o.rows(), d_o.cols()), dv(d_o.rows(), d_o.cols());
  for (int64_t b = 0; b < sequences; ++b) {
    for (int64_t h = 0; h < num_heads_; ++h) {
      const int64_t row = b * seq_len;
      const int64_t col = h * head_dim_;
      const auto q = ctx->q.block(row, col, seq_len, head_dim_);
      const auto k = ctx->k.block(row, col, seq_len, head_dim_);
      const auto v = ctx->v.block(row, col, seq_len, head_dim_);
      const auto dout = d_o.block(row, col, seq_len, head_dim_);
      const auto p = ctx->probs.block((b * num_heads_ + h) * seq_len, 0, seq_len, seq_len);
      dv.block(row, col, seq_len, head_dim_).noalias() = p.transpose() * dout;
      Matrix<T> dp = dout * v.transpose();
      // Softmax backward: ds = p * (dp - rowsum(dp * p)); masked entries have p = 0.
      const Matrix<T> dot = (dp.array() * p.array()).rowwise().sum().matrix();
      Matrix<T> ds = (p.array() * (dp.array().colwise() - dot.col(0).array())) * scale;
      dq.block(row, col, seq_len, head_dim_).noalias() = ds * k;
      dk.block(row, col, seq_len, head_dim_).noalias() = ds.transpose() * q;
    }
  }
  ApplyRope(&dq, num_heads_, head_dim_, seq_len, rope_theta_, /*inverse=*/true);
  ApplyRope(&dk, num_heads_, head_dim_, seq_len, rope_theta_, /*inverse=*/true);
  ctx->q = Matrix<T>();
  ctx->k = Matrix<T>();
  ctx->v = Matrix<T>();
  ctx->probs = Matrix<T>();
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
