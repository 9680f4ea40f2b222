#include "model/model_stage.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "model/cross_entropy.h"

namespace model {

template <typename T>
ModelStage<T>::ModelStage(const ModelConfig& config, const StageRange& range, int ep_rank,
                          int ep_size)
    : config_(config), range_(range), ep_rank_(ep_rank), ep_size_(ep_size) {
  DSMOE_CHECK(0 <= range.begin_layer && range.begin_layer <= range.end_layer &&
                  range.end_layer <= config.num_layers(),
              "ModelStage: layers [", range.begin_layer, ", ", range.end_layer, ") of ",
              config.num_layers());
  if (range.has_embedding) {
    embedding_ = std::make_unique<Embedding<T>>("model.embed_tokens.weight", config.vocab_size(),
                                                config.hidden_size());
  }
  blocks_.reserve(range.end_layer - range.begin_layer);
  for (int layer = range.begin_layer; layer < range.end_layer; ++layer) {
    blocks_.emplace_back(config, layer, ep_rank, ep_size);
  }
  if (range.has_head) {
    norm_ = std::make_unique<RmsNorm<T>>("model.norm.weight", config.hidden_size(),
                                         config.rms_norm_eps());
    head_ =
        std::make_unique<Linear<T>>("lm_head.weight", config.hidden_size(), config.vocab_size());
  }
}

template <typename T>
std::vector<Param<T>*> ModelStage<T>::Params() {
  std::vector<Param<T>*> params;
  if (embedding_ != nullptr) params = embedding_->Params();
  for (DecoderBlock<T>& block : blocks_) {
    for (Param<T>* p : block.Params()) params.push_back(p);
  }
  if (head_ != nullptr) {
    params.push_back(norm_->Params()[0]);
    params.push_back(&head_->weight());
  }
  return params;
}

template <typename T>
std::vector<Param<T>*> ModelStage<T>::ReplicatedParams() {
  std::set<Param<T>*> experts;
  for (DecoderBlock<T>& block : blocks_) {
    for (Param<T>* p : block.ExpertParams()) experts.insert(p);
  }
  std::vector<Param<T>*> params;
  for (Param<T>* p : Params()) {
    if (experts.count(p) == 0) params.push_back(p);
  }
  return params;
}

template <typename T>
absl::Status ModelStage<T>::ValidateTokens(const std::vector<int32_t>& tokens,
                                           int64_t seq_len) const {
  const int64_t count = static_cast<int64_t>(tokens.size());
  if (seq_len < 1 || seq_len > config_.max_seq_len()) {
    return absl::InvalidArgumentError(
        absl::StrCat("seq_len ", seq_len, " outside [1, ", config_.max_seq_len(), "]"));
  }
  if (count % seq_len != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens: ", count, " tokens are not whole sequences of ", seq_len));
  }
  if (range_.has_embedding) {
    for (int32_t id : tokens) {
      if (id < 0 || id >= config_.vocab_size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokens: id ", id, " outside [0, ", config_.vocab_size(), ")"));
      }
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status ModelStage<T>::Validate(const MicroBatch& batch) const {
  const absl::Status tokens_ok = ValidateTokens(batch.tokens, batch.seq_len);
  if (!tokens_ok.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("MicroBatch.", tokens_ok.message()));
  }
  const int64_t tokens = static_cast<int64_t>(batch.tokens.size());
  if (range_.has_head) {
    if (static_cast<int64_t>(batch.targets.size()) != tokens) {
      return absl::InvalidArgumentError(absl::StrCat("MicroBatch.targets: ", batch.targets.size(),
                                                     " targets for ", tokens, " tokens"));
    }
    for (int32_t id : batch.targets) {
      if (id != kIgnoreTarget && (id < 0 || id >= config_.vocab_size())) {
        return absl::InvalidArgumentError(absl::StrCat("MicroBatch.targets: id ", id,
                                                       " outside [0, ", config_.vocab_size(),
                                                       ") and not kIgnoreTarget"));
      }
    }
  }
  return absl::OkStatus();
}

template <typename T>
Matrix<T> ModelStage<T>::ForwardBegin(const MicroBatch& batch, const Matrix<T>& x,
                                      Context* ctx) const {
  const absl::Status valid = Validate(batch);
  DSMOE_CHECK(valid.ok(), valid.ToString());
  ctx->num_tokens = static_cast<int64_t>(batch.tokens.size());
  ctx->loss_scale = batch.loss_scale;
  Matrix<T> h = embedding_ != nullptr ? embedding_->Forward(batch.tokens, &ctx->embedding) : x;
  DSMOE_CHECK(h.rows() == ctx->num_tokens && h.cols() == config_.hidden_size(),
              "ModelStage: input of ", h.rows(), "x", h.cols(), " for ", ctx->num_tokens,
              " tokens");
  ctx->blocks.resize(blocks_.size());
  ctx->aux_loss = 0;
  return h;
}

template <typename T>
Matrix<T> ModelStage<T>::ForwardEnd(const MicroBatch& batch, Matrix<T> h, Context* ctx) const {
  if (head_ == nullptr) return h;
  ctx->targets = batch.targets;
  const Matrix<T> logits = head_->Forward(norm_->Forward(h, &ctx->norm), &ctx->head);
  Matrix<T> loss(1, 1);
  loss(0, 0) = CrossEntropy<T>(logits, batch.targets, nullptr);
  return loss;
}

template <typename T>
Matrix<T> ModelStage<T>::Forward(const MicroBatch& batch, const Matrix<T>& x, Context* ctx) const {
  Matrix<T> h = ForwardBegin(batch, x, ctx);
  const BatchInfo info{batch.seq_len, batch.loss_scale};
  for (size_t i = 0; i < blocks_.size(); ++i) {
    h = blocks_[i].Forward(h, info, &ctx->blocks[i]);
    ctx->aux_loss += blocks_[i].AuxLoss(ctx->blocks[i]);
  }
  return ForwardEnd(batch, std::move(h), ctx);
}

template <typename T>
Matrix<T> ModelStage<T>::BackwardBegin(Matrix<T> dy, Context* ctx) const {
  if (head_ == nullptr) return dy;
  // Recomputes the logits from the saved head input rather than keeping [tokens, vocab] alive
  // between the passes.
  Matrix<T> d_logits;
  const Matrix<T> logits = ctx->head.x * head_->weight().value.transpose();
  CrossEntropy<T>(logits, ctx->targets, &d_logits, static_cast<T>(ctx->loss_scale));
  return norm_->BackwardInput(head_->BackwardInput(std::move(d_logits), &ctx->head), &ctx->norm);
}

template <typename T>
Matrix<T> ModelStage<T>::BackwardEnd(Matrix<T> dy, Context* ctx) const {
  if (embedding_ == nullptr) return dy;
  embedding_->BackwardInput(std::move(dy), &ctx->embedding);
  return Matrix<T>();
}

template <typename T>
Matrix<T> ModelStage<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  dy = BackwardBegin(std::move(dy), ctx);
  for (size_t i = blocks_.size(); i-- > 0;) {
    dy = blocks_[i].BackwardInput(std::move(dy), &ctx->blocks[i]);
  }
  return BackwardEnd(std::move(dy), ctx);
}

template <typename T>
absl::StatusOr<Matrix<T>> ModelStage<T>::InferenceForward(const InferenceBatch& batch,
                                                          const Matrix<T>& x) const {
  for (const DecoderBlock<T>& block : blocks_) {
    if (block.is_moe() && ep_size_ > 1) {
      return absl::FailedPreconditionError(
          "ModelStage::InferenceForward: a stage with expert parallelism needs the EP forward");
    }
  }
  const absl::Status tokens_ok = ValidateTokens(batch.tokens, batch.seq_len);
  if (!tokens_ok.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("InferenceBatch.", tokens_ok.message()));
  }
  if (batch.last_positions < 0 || batch.last_positions > batch.seq_len) {
    return absl::InvalidArgumentError(absl::StrCat("InferenceBatch.last_positions ",
                                                   batch.last_positions, " outside [0, ",
                                                   batch.seq_len, "]"));
  }
  const int64_t tokens = static_cast<int64_t>(batch.tokens.size());
  Matrix<T> h;
  if (embedding_ != nullptr) {
    typename Embedding<T>::Context ctx;
    h = embedding_->Forward(batch.tokens, &ctx);
  } else {
    if (x.rows() != tokens || x.cols() != config_.hidden_size()) {
      return absl::InvalidArgumentError(absl::StrCat("ModelStage::InferenceForward: input of ",
                                                     x.rows(), "x", x.cols(), " for ", tokens,
                                                     " tokens of width ", config_.hidden_size()));
    }
    h = x;
  }
  const BatchInfo info{batch.seq_len, 1.0};
  for (const DecoderBlock<T>& block : blocks_) {
    typename DecoderBlock<T>::Context ctx;
    h = block.Forward(h, info, &ctx);
  }
  if (head_ == nullptr) return h;
  const int64_t n = batch.last_positions == 0 ? batch.seq_len : batch.last_positions;
  if (n < batch.seq_len) {
    const int64_t sequences = tokens / batch.seq_len;
    Matrix<T> last(sequences * n, h.cols());
    for (int64_t b = 0; b < sequences; ++b) {
      last.middleRows(b * n, n) = h.middleRows((b + 1) * batch.seq_len - n, n);
    }
    h = std::move(last);
  }
  typename RmsNorm<T>::Context norm_ctx;
  typename Linear<T>::Context head_ctx;
  return head_->Forward(norm_->Forward(h, &norm_ctx), &head_ctx);
}

template <typename T>
std::pair<Matrix<T>, Matrix<T>> ModelStage<T>::OverlappedForwardBackward(const MicroBatch& f_batch,
                                                                         const Matrix<T>& f_x,
                                                                         Context* f_ctx,
                                                                         Matrix<T> b_dy,
                                                                         Context* b_ctx) const {
  DSMOE_CHECK(f_ctx != b_ctx, "OverlappedForwardBackward: one context for both micro-batches");
  Matrix<T> y = Forward(f_batch, f_x, f_ctx);
  return {std::move(y), BackwardInput(std::move(b_dy), b_ctx)};
}

template <typename T>
void ModelStage<T>::BackwardWeight(Context* ctx) {
  if (head_ != nullptr) {
    head_->BackwardWeight(&ctx->head);
    norm_->BackwardWeight(&ctx->norm);
  }
  for (size_t i = 0; i < blocks_.size(); ++i) blocks_[i].BackwardWeight(&ctx->blocks[i]);
  if (embedding_ != nullptr) embedding_->BackwardWeight(&ctx->embedding);
  *ctx = Context();
}

template class ModelStage<float>;
template class ModelStage<double>;

}  // namespace model
