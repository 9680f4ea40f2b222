// One pre-norm decoder layer: h = x + Attention(RMSNorm(x)); y = h + FFN(RMSNorm(h)), where the
// attention is MLA when the config has an mla section and standard multi-head attention
// otherwise, and the FFN is a dense SwiGLU MLP for the first first_k_dense_layers layers and an
// MoE block after.
//
// MoE layers with expert parallelism run as phases with all-to-alls between them, as Moe does
// (see model/moe.h): ForwardDispatch (attention, norm, routing) -> ForwardExperts ->
// ForwardCombine (combine, residual), and BackwardCombine -> BackwardExperts -> BackwardDispatch.
// Weight names follow DeepSeek-V3's checkpoints ("model.layers.<i>.self_attn.q_proj.weight").
#ifndef MODEL_DECODER_BLOCK_H_
#define MODEL_DECODER_BLOCK_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "model/attention.h"
#include "model/config.pb.h"
#include "model/matrix.h"
#include "model/mla.h"
#include "model/mlp.h"
#include "model/moe.h"
#include "model/rms_norm.h"

namespace model {

// Forward and BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight and UpdateMoeBias write and must not race with anything else.
template <typename T>
class DecoderBlock {
 public:
  struct Context {
    typename RmsNorm<T>::Context attn_norm, ffn_norm;
    typename Attention<T>::Context attn;  // standard attention
    typename Mla<T>::Context mla;         // MLA
    typename Mlp<T>::Context mlp;         // dense layers
    typename Moe<T>::Context moe;         // MoE layers
    Matrix<T> h;   // MoE phases: the attention residual, until ForwardCombine
    Matrix<T> dy;  // MoE phases: the output gradient, until BackwardDispatch
  };

  // Layer `layer` of a model with `config` (validated), holding the routed experts of EP rank
  // ep_rank of ep_size if it is an MoE layer. CHECKs 0 <= layer < num_layers.
  DecoderBlock(const ModelConfig& config, int layer, int ep_rank = 0, int ep_size = 1);

  bool is_moe() const { return moe_ != nullptr; }

  // x [tokens, hidden] -> [tokens, hidden]; tokens hold whole sequences of batch.seq_len.
  // CHECKs that the layer is dense or has an expert parallelism of one.
  Matrix<T> Forward(const Matrix<T>& x, const BatchInfo& batch, Context* ctx) const;
  // dy [tokens, hidden] -> dx [tokens, hidden] (through both residual branches).
  Matrix<T> BackwardInput(Matrix<T> dy, Context* ctx) const;
  // Accumulates every weight gradient of ctx's micro-batch; frees ctx.
  void BackwardWeight(Context* ctx);

  // The phases of an MoE layer (CHECKed), as the Moe phases of the same names; ForwardDispatch
  // also runs the attention half and ForwardCombine adds the residual, BackwardDispatch returns
  // dx of the whole layer.
  ExpertRows<T> ForwardDispatch(const Matrix<T>& x, const BatchInfo& batch, Context* ctx) const;
  Matrix<T> ForwardExperts(const Matrix<T>& rows, const std::vector<int64_t>& recv_counts,
                           Context* ctx) const;
  Matrix<T> ForwardCombine(Matrix<T> expert_out, Context* ctx) const;
  Matrix<T> BackwardCombine(Matrix<T> dy, Context* ctx) const;
  Matrix<T> BackwardExperts(const Matrix<T>& d_rows, Context* ctx) const;
  Matrix<T> BackwardDispatch(const Matrix<T>& dx_rows, Context* ctx) const;

  // For MoE layers, the tokens routed to each expert by ctx's forward; empty for dense layers.
  const std::vector<int64_t>& MoeLoads(const Context& ctx) const { return ctx.moe.loads; }
  // The MoE balance loss of ctx's forward (0 for dense layers or when disabled).
  T AuxLoss(const Context& ctx) const { return ctx.moe.aux_loss; }
  // MoE layers: moves the selection bias towards balance; CHECKs is_moe().
  void UpdateMoeBias(const std::vector<int64_t>& loads);

  // The norms, the attention and the FFN's parameters, in that order (owned by this layer).
  std::vector<Param<T>*> Params();
  // MoE layers: this rank's routed experts' parameters (see Moe::ExpertParams); empty otherwise.
  std::vector<Param<T>*> ExpertParams() {
    return moe_ != nullptr ? moe_->ExpertParams() : std::vector<Param<T>*>();
  }

 private:
  // x -> h = x + attention(norm(x)), and its backward: dh -> dx (dh includes the residual path).
  Matrix<T> AttentionHalf(const Matrix<T>& x, const BatchInfo& batch, Context* ctx) const;
  Matrix<T> AttentionHalfBackward(Matrix<T> dh, Context* ctx) const;

  RmsNorm<T> attn_norm_;
  std::unique_ptr<Attention<T>> attn_;  // exactly one of attn_ and mla_ is set
  std::unique_ptr<Mla<T>> mla_;
  RmsNorm<T> ffn_norm_;
  std::unique_ptr<Mlp<T>> mlp_;  // exactly one of mlp_ and moe_ is set
  std::unique_ptr<Moe<T>> moe_;
};

}  // namespace model

#endif  // MODEL_DECODER_BLOCK_H_
