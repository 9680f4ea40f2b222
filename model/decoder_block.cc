#include "model/decoder_block.h"

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "model/config.h"

namespace model {
namespace {

std::string Prefix(int layer) { return absl::StrCat("model.layers.", layer, "."); }

}  // namespace

template <typename T>
DecoderBlock<T>::DecoderBlock(const ModelConfig& config, int layer, int ep_rank, int ep_size)
    : attn_norm_(Prefix(layer) + "input_layernorm.weight", config.hidden_size(),
                 config.rms_norm_eps()),
      ffn_norm_(Prefix(layer) + "post_attention_layernorm.weight", config.hidden_size(),
                config.rms_norm_eps()) {
  DSMOE_CHECK(layer >= 0 && layer < config.num_layers(), "DecoderBlock: layer ", layer, " of ",
              config.num_layers());
  if (config.has_mla()) {
    mla_ = std::make_unique<Mla<T>>(Prefix(layer) + "self_attn.", config.hidden_size(),
                                    config.num_heads(), config.mla(), config.rope_theta(),
                                    config.rms_norm_eps());
  } else {
    attn_ =
        std::make_unique<Attention<T>>(Prefix(layer) + "self_attn.", config.hidden_size(),
                                       config.num_heads(), config.head_dim(), config.rope_theta());
  }
  if (IsMoeLayer(config, layer)) {
    moe_ = std::make_unique<Moe<T>>(Prefix(layer) + "mlp.", config.hidden_size(), config.moe(),
                                    ep_rank, ep_size);
  } else {
    mlp_ = std::make_unique<Mlp<T>>(Prefix(layer) + "mlp.", config.hidden_size(),
                                    config.intermediate_size());
  }
}

template <typename T>
std::vector<Param<T>*> DecoderBlock<T>::Params() {
  std::vector<Param<T>*> params = attn_norm_.Params();
  for (Param<T>* p : mla_ != nullptr ? mla_->Params() : attn_->Params()) params.push_back(p);
  for (Param<T>* p : ffn_norm_.Params()) params.push_back(p);
  for (Param<T>* p : moe_ != nullptr ? moe_->Params() : mlp_->Params()) params.push_back(p);
  return params;
}

template <typename T>
Matrix<T> DecoderBlock<T>::AttentionHalf(const Matrix<T>& x, const BatchInfo& batch,
                                         Context* ctx) const {
  const Matrix<T> normed_x = attn_norm_.Forward(x, &ctx->attn_norm);
  return x + (mla_ != nullptr ? mla_->Forward(normed_x, batch.seq_len, &ctx->mla)
                              : attn_->Forward(normed_x, batch.seq_len, &ctx->attn));
}

template <typename T>
Matrix<T> DecoderBlock<T>::AttentionHalfBackward(Matrix<T> dh, Context* ctx) const {
  Matrix<T> d_attn =
      mla_ != nullptr ? mla_->BackwardInput(dh, &ctx->mla) : attn_->BackwardInput(dh, &ctx->attn);
  dh += attn_norm_.BackwardInput(std::move(d_attn), &ctx->attn_norm);
  return dh;
}

template <typename T>
Matrix<T> DecoderBlock<T>::Forward(const Matrix<T>& x, const BatchInfo& batch, Context* ctx) const {
  Matrix<T> h = AttentionHalf(x, batch, ctx);
  const Matrix<T> normed = ffn_norm_.Forward(h, &ctx->ffn_norm);
  h += moe_ != nullptr ? moe_->Forward(normed, batch, &ctx->moe) : mlp_->Forward(normed, &ctx->mlp);
  return h;
}

template <typename T>
Matrix<T> DecoderBlock<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  Matrix<T> d_ffn =
      moe_ != nullptr ? moe_->BackwardInput(dy, &ctx->moe) : mlp_->BackwardInput(dy, &ctx->mlp);
  Matrix<T> dh = std::move(dy);
  dh += ffn_norm_.BackwardInput(std::move(d_ffn), &ctx->ffn_norm);
  return AttentionHalfBackward(std::move(dh), ctx);
}

template <typename T>
ExpertRows<T> DecoderBlock<T>::ForwardDispatch(const Matrix<T>& x, const BatchInfo& batch,
                                               Context* ctx) const {
  DSMOE_CHECK(moe_ != nullptr, "DecoderBlock::ForwardDispatch on a dense layer");
  ctx->h = AttentionHalf(x, batch, ctx);
  return moe_->ForwardDispatch(ffn_norm_.Forward(ctx->h, &ctx->ffn_norm), batch, &ctx->moe);
}

template <typename T>
Matrix<T> DecoderBlock<T>::ForwardExperts(const Matrix<T>& rows,
                                          const std::vector<int64_t>& recv_counts,
                                          Context* ctx) const {
  DSMOE_CHECK(moe_ != nullptr, "DecoderBlock::ForwardExperts on a dense layer");
  return moe_->ForwardExperts(rows, recv_counts, &ctx->moe);
}

template <typename T>
Matrix<T> DecoderBlock<T>::ForwardCombine(Matrix<T> expert_out, Context* ctx) const {
  DSMOE_CHECK(moe_ != nullptr, "DecoderBlock::ForwardCombine on a dense layer");
  Matrix<T> y = std::move(ctx->h);
  y += moe_->ForwardCombine(std::move(expert_out), &ctx->moe);
  return y;
}

template <typename T>
Matrix<T> DecoderBlock<T>::BackwardCombine(Matrix<T> dy, Context* ctx) const {
  DSMOE_CHECK(moe_ != nullptr, "DecoderBlock::BackwardCombine on a dense layer");
  ctx->dy = dy;
  return moe_->BackwardCombine(std::move(dy), &ctx->moe);
}

template <typename T>
Matrix<T> DecoderBlock<T>::BackwardExperts(const Matrix<T>& d_rows, Context* ctx) const {
  DSMOE_CHECK(moe_ != nullptr, "DecoderBlock::BackwardExperts on a dense layer");
  return moe_->BackwardExperts(d_rows, &ctx->moe);
}

template <typename T>
Matrix<T> DecoderBlock<T>::BackwardDispatch(const Matrix<T>& dx_rows, Context* ctx) const {
  DSMOE_CHECK(moe_ != nullptr, "DecoderBlock::BackwardDispatch on a dense layer");
  Matrix<T> dh = std::move(ctx->dy);
  dh += ffn_norm_.BackwardInput(moe_->BackwardDispatch(dx_rows, &ctx->moe), &ctx->ffn_norm);
  return AttentionHalfBackward(std::move(dh), ctx);
}

template <typename T>
void DecoderBlock<T>::BackwardWeight(Context* ctx) {
  attn_norm_.BackwardWeight(&ctx->attn_norm);
  if (mla_ != nullptr) {
    mla_->BackwardWeight(&ctx->mla);
  } else {
    attn_->BackwardWeight(&ctx->attn);
  }
  ffn_norm_.BackwardWeight(&ctx->ffn_norm);
  if (moe_ != nullptr) {
    moe_->BackwardWeight(&ctx->moe);
  } else {
    mlp_->BackwardWeight(&ctx->mlp);
  }
}

template <typename T>
void DecoderBlock<T>::UpdateMoeBias(const std::vector<int64_t>& loads) {
  DSMOE_CHECK(moe_ != nullptr, "UpdateMoeBias on a dense layer");
  moe_->UpdateBias(loads);
}

template class DecoderBlock<float>;
template class DecoderBlock<double>;

}  // namespace model
