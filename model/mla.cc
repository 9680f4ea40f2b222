#include "model/mla.h"

#include <cmath>

#include "core/check.h"
#include "model/rope.h"

namespace model {
namespace {

// For every head h: dst columns [h * dst_stride + dst_offset, + width) = src columns
// [h * src_stride + src_offset, + width) (src_stride 0: the same columns for every head).
template <typename T>
void CopyHeadColumns(const Matrix<T>& src, int64_t src_stride, int64_t src_offset, Matrix<T>* dst,
                     int64_t dst_stride, int64_t dst_offset, int64_t width, int64_t heads) {
  for (int64_t h = 0; h < heads; ++h) {
    dst->middleCols(h * dst_stride + dst_offset, width) =
        src.middleCols(h * src_stride + src_offset, width);
  }
}

}  // namespace

template <typename T>
Mla<T>::Mla(const std::string& prefix, int64_t hidden, int64_t num_heads, const MlaConfig& mla,
            double rope_theta, double rms_norm_eps)
    : num_heads_(num_heads),
      nope_(mla.qk_nope_head_dim()),
      rope_(mla.qk_rope_head_dim()),
      v_dim_(mla.v_head_dim()),
      kv_lora_(mla.kv_lora_rank()),
      rope_theta_(rope_theta),
      kv_a_(prefix + "kv_a_proj_with_mqa.weight", hidden, kv_lora_ + rope_),
      kv_norm_(prefix + "kv_a_layernorm.weight", kv_lora_, rms_norm_eps),
      kv_b_(prefix + "kv_b_proj.weight", kv_lora_, num_heads * (nope_ + v_dim_)),
      o_(prefix + "o_proj.weight", num_heads * v_dim_, hidden) {
  const int64_t q_width = num_heads * (nope_ + rope_);
  if (mla.q_lora_rank() > 0) {
    q_a_ = std::make_unique<Linear<T>>(prefix + "q_a_proj.weight", hidden, mla.q_lora_rank());
    q_norm_ = std::make_unique<RmsNorm<T>>(prefix + "q_a_layernorm.weight", mla.q_lora_rank(),
                                           rms_norm_eps);
    q_b_ = std::make_unique<Linear<T>>(prefix + "q_b_proj.weight", mla.q_lora_rank(), q_width);
  } else {
    q_ = std::make_unique<Linear<T>>(prefix + "q_proj.weight", hidden, q_width);
  }
}

template <typename T>
std::vector<Param<T>*> Mla<T>::Params() {
  std::vector<Param<T>*> params;
  if (q_ != nullptr) {
    params.push_back(&q_->weight());
  } else {
    params = {&q_a_->weight(), q_norm_->Params()[0], &q_b_->weight()};
  }
  params.push_back(&kv_a_.weight());
  params.push_back(kv_norm_.Params()[0]);
  params.push_back(&kv_b_.weight());
  params.push_back(&o_.weight());
  return params;
}

template <typename T>
Matrix<T> Mla<T>::Forward(const Matrix<T>& x, int64_t seq_len, Context* ctx) const {
  DSMOE_CHECK(seq_len > 0 && x.rows() % seq_len == 0, "Mla: ", x.rows(),
              " tokens are not whole sequences of ", seq_len);
  const int64_t tokens = x.rows();
  const int64_t qk = nope_ + rope_;
  Matrix<T> q =
      q_ != nullptr
          ? q_->Forward(x, &ctx->q)
          : q_b_->Forward(q_norm_->Forward(q_a_->Forward(x, &ctx->q_a), &ctx->q_norm), &ctx->q_b);
  Matrix<T> q_rope(tokens, num_heads_ * rope_);
  CopyHeadColumns(q, qk, nope_, &q_rope, rope_, 0, rope_, num_heads_);
  ApplyRope(&q_rope, num_heads_, rope_, seq_len, rope_theta_, /*inverse=*/false);
  CopyHeadColumns(q_rope, rope_, 0, &q, qk, nope_, rope_, num_heads_);

  const Matrix<T> kv_a = kv_a_.Forward(x, &ctx->kv_a);
  Matrix<T> k_rope = kv_a.rightCols(rope_);
  ApplyRope(&k_rope, 1, rope_, seq_len, rope_theta_, /*inverse=*/false);
  const Matrix<T> kv =
      kv_b_.Forward(kv_norm_.Forward(kv_a.leftCols(kv_lora_), &ctx->kv_norm), &ctx->kv_b);
  Matrix<T> k(tokens, num_heads_ * qk), v(tokens, num_heads_ * v_dim_);
  CopyHeadColumns(kv, nope_ + v_dim_, 0, &k, qk, 0, nope_, num_heads_);
  CopyHeadColumns(k_rope, 0, 0, &k, qk, nope_, rope_, num_heads_);
  CopyHeadColumns(kv, nope_ + v_dim_, nope_, &v, v_dim_, 0, v_dim_, num_heads_);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(qk)));
  const Matrix<T> o = AttentionCoreForward(std::move(q), std::move(k), std::move(v), num_heads_,
                                           seq_len, scale, &ctx->core);
  return o_.Forward(o, &ctx->o);
}

template <typename T>
Matrix<T> Mla<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  const int64_t seq_len = ctx->core.seq_len;
  const int64_t tokens = dy.rows();
  const int64_t qk = nope_ + rope_;
  Matrix<T> dq, dk, dv;
  AttentionCoreBackward(o_.BackwardInput(std::move(dy), &ctx->o), &ctx->core, &dq, &dk, &dv);

  // Keys: the rotated part is shared by the heads, so its gradient sums over them.
  Matrix<T> d_kv(tokens, num_heads_ * (nope_ + v_dim_));
  CopyHeadColumns(dk, qk, 0, &d_kv, nope_ + v_dim_, 0, nope_, num_heads_);
  CopyHeadColumns(dv, v_dim_, 0, &d_kv, nope_ + v_dim_, nope_, v_dim_, num_heads_);
  Matrix<T> dk_rope = Matrix<T>::Zero(tokens, rope_);
  for (int64_t h = 0; h < num_heads_; ++h) dk_rope += dk.middleCols(h * qk + nope_, rope_);
  ApplyRope(&dk_rope, 1, rope_, seq_len, rope_theta_, /*inverse=*/true);
  Matrix<T> d_kv_a(tokens, kv_lora_ + rope_);
  d_kv_a.leftCols(kv_lora_) =
      kv_norm_.BackwardInput(kv_b_.BackwardInput(std::move(d_kv), &ctx->kv_b), &ctx->kv_norm);
  d_kv_a.rightCols(rope_) = dk_rope;
  Matrix<T> dx = kv_a_.BackwardInput(std::move(d_kv_a), &ctx->kv_a);

  // Queries: rotate the gradient of the rotated part back.
  Matrix<T> dq_rope(tokens, num_heads_ * rope_);
  CopyHeadColumns(dq, qk, nope_, &dq_rope, rope_, 0, rope_, num_heads_);
  ApplyRope(&dq_rope, num_heads_, rope_, seq_len, rope_theta_, /*inverse=*/true);
  CopyHeadColumns(dq_rope, rope_, 0, &dq, qk, nope_, rope_, num_heads_);
  if (q_ != nullptr) {
    dx += q_->BackwardInput(std::move(dq), &ctx->q);
  } else {
    dx += q_a_->BackwardInput(
        q_norm_->BackwardInput(q_b_->BackwardInput(std::move(dq), &ctx->q_b), &ctx->q_norm),
        &ctx->q_a);
  }
  return dx;
}

template <typename T>
void Mla<T>::BackwardWeight(Context* ctx) {
  if (q_ != nullptr) {
    q_->BackwardWeight(&ctx->q);
  } else {
    q_a_->BackwardWeight(&ctx->q_a);
    q_norm_->BackwardWeight(&ctx->q_norm);
    q_b_->BackwardWeight(&ctx->q_b);
  }
  kv_a_.BackwardWeight(&ctx->kv_a);
  kv_norm_.BackwardWeight(&ctx->kv_norm);
  kv_b_.BackwardWeight(&ctx->kv_b);
  o_.BackwardWeight(&ctx->o);
}

template class Mla<float>;
template class Mla<double>;

}  // namespace model
