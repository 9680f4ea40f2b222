// A contiguous range of a DeepSeek-V3-style model's layers: the unit a pipeline stage runs. The
// first stage also owns the token embedding; the last owns the final RMSNorm, the LM head and the
// cross-entropy loss. The stage over all layers is the whole model.
//
//   ModelStage<float> model(config, StageRange::Whole(config));
//   ModelStage<float>::Context ctx;
//   const Matrix<float> loss = model.Forward(batch, Matrix<float>(), &ctx);   // [1, 1]
//   model.BackwardInput(Matrix<float>(), &ctx);
//   model.BackwardWeight(&ctx);   // may be deferred: contexts are independent
//
// Expert parallelism: a stage built with (ep_rank, ep_size) holds 1 / ep_size of every MoE layer's
// routed experts; its Forward / BackwardInput / OverlappedForwardBackward overloads that take a
// comm::Communicator run each MoE layer as phases with the all-to-alls of model/expert_exchange.h
// between them. Each rank of the EP group runs its own micro-batch; the group makes every call in
// the same order. After BackwardWeight, AllReduceGradients(ep, ReplicatedParams()) sums the
// gradients of the weights every rank holds; routed experts' gradients stay local.
#ifndef MODEL_MODEL_STAGE_H_
#define MODEL_MODEL_STAGE_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "model/config.pb.h"
#include "model/cross_entropy.h"
#include "model/decoder_block.h"
#include "model/embedding.h"
#include "model/internal/comm_task.h"
#include "model/linear.h"
#include "model/matrix.h"
#include "model/rms_norm.h"

namespace model {

// Layers [begin_layer, end_layer) of the decoder, plus the embedding and the head if asked.
struct StageRange {
  int begin_layer = 0;
  int end_layer = 0;
  bool has_embedding = false;  // the first stage
  bool has_head = false;       // the last stage

  static StageRange Whole(const ModelConfig& config) {
    return {0, config.num_layers(), true, true};
  }
};

// One micro-batch: `tokens` and `targets` each hold whole sequences of seq_len back to back.
struct MicroBatch {
  std::vector<int32_t> tokens;   // [tokens] input ids, read by the first stage
  std::vector<int32_t> targets;  // [tokens] next-token ids or kIgnoreTarget, read by the last
  int64_t seq_len = 0;
  // The last stage's loss gradient is multiplied by this (e.g. 1 / micro-batches per step).
  double loss_scale = 1.0;
};

// One inference call: whole sequences of seq_len tokens, back to back, with no targets.
struct InferenceBatch {
  std::vector<int32_t> tokens;  // [tokens] input ids (the first stage embeds them)
  int64_t seq_len = 0;
  // The last stage returns the logits of the last `last_positions` positions of every sequence;
  // 0 (or seq_len) for all positions.
  int64_t last_positions = 0;
};

// Forward and BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight and UpdateMoeBias write and must not race with anything else.
template <typename T>
class ModelStage {
 public:
  struct Context {
    int64_t num_tokens = 0;
    T aux_loss = 0;  // the sum of this stage's MoE balance losses (see Forward)
    double loss_scale = 1.0;
    std::vector<int32_t> targets;
    typename Embedding<T>::Context embedding;
    std::vector<typename DecoderBlock<T>::Context> blocks;
    typename RmsNorm<T>::Context norm;
    typename Linear<T>::Context head;
  };

  // `config` must have passed ValidateConfig; CHECKs 0 <= begin_layer <= end_layer <= num_layers,
  // and for MoE layers 0 <= ep_rank < ep_size with ep_size dividing the routed experts.
  ModelStage(const ModelConfig& config, const StageRange& range, int ep_rank = 0, int ep_size = 1);

  // OK if `batch` suits this stage: seq_len in [1, max_seq_len] and dividing the token count,
  // token ids (first stage) and targets (last stage) in range. INVALID_ARGUMENT otherwise.
  absl::Status Validate(const MicroBatch& batch) const;

  // Runs the forward pass of a validated batch (Validate's conditions are CHECKed). x [tokens,
  // hidden] is the previous stage's output (ignored by the first stage, which embeds
  // batch.tokens). Returns the hidden state [tokens, hidden], or for the last stage the mean
  // cross-entropy loss as a [1, 1] matrix. Sets ctx->aux_loss to the stage's MoE balance losses;
  // the model's loss is the cross-entropy plus every stage's aux_loss, and BackwardInput follows
  // that total.
  Matrix<T> Forward(const MicroBatch& batch, const Matrix<T>& x, Context* ctx) const;
  // dy [tokens, hidden] is the gradient of this stage's output (ignored by the last stage, whose
  // loss gradient is batch.loss_scale). Returns dx [tokens, hidden], or an empty matrix for the
  // first stage.
  Matrix<T> BackwardInput(Matrix<T> dy, Context* ctx) const;
  // Accumulates every weight gradient of ctx's micro-batch; frees ctx.
  void BackwardWeight(Context* ctx);

  // The inference forward (prefill without a KV cache): the training Forward's computation
  // without targets, loss or saved activations (each layer's context is dropped when the layer is
  // done). x [tokens, hidden] is the previous stage's output (ignored by the first stage, which
  // embeds batch.tokens; other stages use batch.tokens' count and seq_len only). Returns the
  // hidden state [tokens, hidden], or for the last stage the logits
  // [sequences * n, vocab] of the last n = last_positions (0: seq_len) positions of every
  // sequence, sequence-major and in position order. With last_positions 0 these are bit-equal to
  // the logits the training Forward computes (the LM head applied to its final norm's output);
  // with n < seq_len they equal those rows up to the BLAS's summation order. The gate's balance
  // loss is computed and dropped. INVALID_ARGUMENT for a bad batch (as Validate, less targets;
  // last_positions outside [0, seq_len]; x not [tokens, hidden] on a later stage);
  // FAILED_PRECONDITION for a stage with MoE layers and ep_size > 1. Const: concurrent calls are
  // safe, as are concurrent Forward / BackwardInput calls.
  //
  // The serving engine's KV-cached incremental forward is meant to sit beside this one, reusing
  // the same layers (blocks(), embedding and head) and checked against it: a prefill of p tokens
  // followed by decode steps must give the rows this call gives for the whole sequence.
  absl::StatusOr<Matrix<T>> InferenceForward(const InferenceBatch& batch, const Matrix<T>& x) const;

  // The pair DualPipe overlaps, without expert parallelism: there is no communication to hide,
  // so Forward(f_batch, f_x, f_ctx) then BackwardInput(b_dy, b_ctx) of another micro-batch, as
  // DeepSeek's example stage does. Returns {forward output, backward dx}. CHECKs f_ctx != b_ctx.
  std::pair<Matrix<T>, Matrix<T>> OverlappedForwardBackward(const MicroBatch& f_batch,
                                                            const Matrix<T>& f_x, Context* f_ctx,
                                                            Matrix<T> b_dy, Context* b_ctx) const;

  // Expert-parallel versions of the three calls above, for T = float only (comm has no f64; other
  // scalars do not link). `ep` is this stage's EP group: CHECKs that its rank and size are the
  // constructor's ep_rank and ep_size. Every rank of the group makes the same sequence of calls.
  // Returns what the calls above return, or the communicator's error. A stage with ep_size > 1
  // must use these: the calls above DSMOE_CHECK-fail on its MoE layers.
  //
  // The overlapped pair runs the forward and the backward input pass interleaved on the calling
  // thread, switching at every all-to-all (comm's StartAllToAll; model/internal/comm_task.h):
  // while one micro-batch's tokens travel to or from the experts, the other computes. Its
  // results equal the two calls made one after the other, bit for bit. CHECKs f_ctx != b_ctx and
  // f_ep != b_ep (each micro-batch's all-to-alls on its own communicator).
  absl::StatusOr<Matrix<T>> Forward(const MicroBatch& batch, const Matrix<T>& x, Context* ctx,
                                    comm::Communicator& ep) const;
  absl::StatusOr<Matrix<T>> BackwardInput(Matrix<T> dy, Context* ctx, comm::Communicator& ep) const;
  absl::StatusOr<std::pair<Matrix<T>, Matrix<T>>> OverlappedForwardBackward(
      const MicroBatch& f_batch, const Matrix<T>& f_x, Context* f_ctx, comm::Communicator& f_ep,
      Matrix<T> b_dy, Context* b_ctx, comm::Communicator& b_ep) const;
  // The same pair across two stages of one rank (DualPipe pairs the forward of one of a rank's
  // stages with the backward of the other): f_stage's Forward and b_stage's BackwardInput.
  static absl::StatusOr<std::pair<Matrix<T>, Matrix<T>>> OverlappedForwardBackward(
      const ModelStage& f_stage, const MicroBatch& f_batch, const Matrix<T>& f_x, Context* f_ctx,
      comm::Communicator& f_ep, const ModelStage& b_stage, Matrix<T> b_dy, Context* b_ctx,
      comm::Communicator& b_ep);

  const ModelConfig& config() const { return config_; }
  const StageRange& range() const { return range_; }
  int ep_rank() const { return ep_rank_; }
  int ep_size() const { return ep_size_; }
  // The stage's blocks, layer begin_layer first.
  std::vector<DecoderBlock<T>>& blocks() { return blocks_; }
  // Every parameter: embedding, blocks in order, final norm, head.
  std::vector<Param<T>*> Params();
  // Params() less this rank's routed experts: the weights every rank of the EP group holds.
  std::vector<Param<T>*> ReplicatedParams();

 private:
  // Validate's checks of the token ids and seq_len (shared with InferenceForward).
  absl::Status ValidateTokens(const std::vector<int32_t>& tokens, int64_t seq_len) const;

  // The expert-parallel Forward and BackwardInput as tasks that suspend at each all-to-all;
  // their results go to *y and *dx.
  internal::CommTask ForwardTask(const MicroBatch& batch, const Matrix<T>& x, Context* ctx,
                                 comm::Communicator& ep, Matrix<T>* y) const;
  internal::CommTask BackwardInputTask(Matrix<T> dy, Context* ctx, comm::Communicator& ep,
                                       Matrix<T>* dx) const;
  void CheckEp(const comm::Communicator& ep) const;

  // The parts of Forward and BackwardInput around the blocks. ForwardBegin: validation and the
  // embedding, returns the first block's input; ForwardEnd: the head and loss, returns Forward's
  // result. BackwardBegin: the head's backward, returns the last block's output gradient;
  // BackwardEnd: the embedding's, returns BackwardInput's result.
  Matrix<T> ForwardBegin(const MicroBatch& batch, const Matrix<T>& x, Context* ctx) const;
  Matrix<T> ForwardEnd(const MicroBatch& batch, Matrix<T> h, Context* ctx) const;
  Matrix<T> BackwardBegin(Matrix<T> dy, Context* ctx) const;
  Matrix<T> BackwardEnd(Matrix<T> dy, Context* ctx) const;

  ModelConfig config_;
  StageRange range_;
  int ep_rank_;
  int ep_size_;
  std::unique_ptr<Embedding<T>> embedding_;  // first stage only
  std::vector<DecoderBlock<T>> blocks_;
  std::unique_ptr<RmsNorm<T>> norm_;  // last stage only
  std::unique_ptr<Linear<T>> head_;   // last stage only
};

}  // namespace model

#endif  // MODEL_MODEL_STAGE_H_
