#include "model/attention_core.h"

#include "core/check.h"

namespace model {

template <typename T>
Matrix<T> AttentionCoreForward(Matrix<T> q, Matrix<T> k, Matrix<T> v, int64_t num_heads,
                               int64_t seq_len, T scale, AttentionCoreContext<T>* ctx) {
  const int64_t tokens = q.rows();
  DSMOE_CHECK(seq_len > 0 && tokens % seq_len == 0, "Attention: ", tokens,
              " tokens are not whole sequences of ", seq_len);
  DSMOE_CHECK(num_heads > 0 && q.cols() % num_heads == 0 && v.cols() % num_heads == 0 &&
                  k.cols() == q.cols() && k.rows() == tokens && v.rows() == tokens,
              "Attention: q ", q.rows(), "x", q.cols(), ", k ", k.rows(), "x", k.cols(), ", v ",
              v.rows(), "x", v.cols(), " for ", num_heads, " heads");
  const int64_t qk_dim = q.cols() / num_heads;
  const int64_t v_dim = v.cols() / num_heads;
  const int64_t sequences = tokens / seq_len;
  ctx->num_heads = num_heads;
  ctx->seq_len = seq_len;
  ctx->scale = scale;
  ctx->q = std::move(q);
  ctx->k = std::move(k);
  ctx->v = std::move(v);
  ctx->probs.resize(sequences * num_heads * seq_len, seq_len);
  Matrix<T> o(tokens, num_heads * v_dim);
  for (int64_t b = 0; b < sequences; ++b) {
    for (int64_t h = 0; h < num_heads; ++h) {
      const auto qh = ctx->q.block(b * seq_len, h * qk_dim, seq_len, qk_dim);
      const auto kh = ctx->k.block(b * seq_len, h * qk_dim, seq_len, qk_dim);
      const auto vh = ctx->v.block(b * seq_len, h * v_dim, seq_len, v_dim);
      auto p = ctx->probs.block((b * num_heads + h) * seq_len, 0, seq_len, seq_len);
      p.noalias() = (qh * kh.transpose()) * scale;
      for (int64_t i = 0; i < seq_len; ++i) {
        const T max = p.row(i).head(i + 1).maxCoeff();
        p.row(i).head(i + 1) = (p.row(i).head(i + 1).array() - max).exp().matrix();
        p.row(i).head(i + 1) /= p.row(i).head(i + 1).sum();
        p.row(i).tail(seq_len - i - 1).setZero();
      }
      o.block(b * seq_len, h * v_dim, seq_len, v_dim).noalias() = p * vh;
    }
  }
  return o;
}

template <typename T>
void AttentionCoreBackward(const Matrix<T>& d_o, AttentionCoreContext<T>* ctx, Matrix<T>* dq,
                           Matrix<T>* dk, Matrix<T>* dv) {
  DSMOE_CHECK(d_o.rows() == ctx->v.rows() && d_o.cols() == ctx->v.cols(),
              "Attention: output gradient shape does not match the forward pass");
  const int64_t num_heads = ctx->num_heads;
  const int64_t seq_len = ctx->seq_len;
  const int64_t qk_dim = ctx->q.cols() / num_heads;
  const int64_t v_dim = ctx->v.cols() / num_heads;
  const int64_t sequences = d_o.rows() / seq_len;
  dq->resize(ctx->q.rows(), ctx->q.cols());
  dk->resize(ctx->k.rows(), ctx->k.cols());
  dv->resize(ctx->v.rows(), ctx->v.cols());
  for (int64_t b = 0; b < sequences; ++b) {
    for (int64_t h = 0; h < num_heads; ++h) {
      const int64_t row = b * seq_len;
      const auto q = ctx->q.block(row, h * qk_dim, seq_len, qk_dim);
      const auto k = ctx->k.block(row, h * qk_dim, seq_len, qk_dim);
      const auto v = ctx->v.block(row, h * v_dim, seq_len, v_dim);
      const auto dout = d_o.block(row, h * v_dim, seq_len, v_dim);
      const auto p = ctx->probs.block((b * num_heads + h) * seq_len, 0, seq_len, seq_len);
      dv->block(row, h * v_dim, seq_len, v_dim).noalias() = p.transpose() * dout;
      const Matrix<T> dp = dout * v.transpose();
      // Softmax backward: ds = p * (dp - rowsum(dp * p)); masked entries have p = 0.
      const Matrix<T> dot = (dp.array() * p.array()).rowwise().sum().matrix();
      const Matrix<T> ds = (p.array() * (dp.array().colwise() - dot.col(0).array())) * ctx->scale;
      dq->block(row, h * qk_dim, seq_len, qk_dim).noalias() = ds * k;
      dk->block(row, h * qk_dim, seq_len, qk_dim).noalias() = ds.transpose() * q;
    }
  }
  *ctx = AttentionCoreContext<T>();
}

template Matrix<float> AttentionCoreForward<float>(Matrix<float>, Matrix<float>, Matrix<float>,
                                                   int64_t, int64_t, float,
                                                   AttentionCoreContext<float>*);
template Matrix<double> AttentionCoreForward<double>(Matrix<double>, Matrix<double>, Matrix<double>,
                                                     int64_t, int64_t, double,
                                                     AttentionCoreContext<double>*);
template void AttentionCoreBackward<float>(const Matrix<float>&, AttentionCoreContext<float>*,
                                           Matrix<float>*, Matrix<float>*, Matrix<float>*);
template void AttentionCoreBackward<double>(const Matrix<double>&, AttentionCoreContext<double>*,
                                            Matrix<double>*, Matrix<double>*, Matrix<double>*);

}  // namespace model
