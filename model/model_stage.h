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

// Forward and BackwardInput are const and may run concurrently on different contexts (one
// micro-batch's compute overlapping another's); BackwardWeight and UpdateMoeBias write and must
// not race with anything else.
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

  // The overlapped pair of DualPipe: Forward(f_batch, f_x, f_ctx) on the calling thread while
  // BackwardInput(b_dy, b_ctx) of another micro-batch runs on a second thread. Returns {forward
  // output, backward dx}, equal to the two calls made one after the other. CHECKs f_ctx != b_ctx.
  std::pair<Matrix<T>, Matrix<T>> OverlappedForwardBackward(const MicroBatch& f_batch,
                                                            const Matrix<T>& f_x, Context* f_ctx,
                                                            Matrix<T> b_dy, Context* b_ctx) const;

  // Expert-parallel versions of the three calls above, for T = float only (comm has no f64; other
  // scalars do not link). `ep` is this stage's EP group: CHECKs that its rank and size are the
  // constructor's ep_rank and ep_size, and (overlapped) that f_ep and b_ep differ: the two
  // micro-batches' all-to-alls run concurrently, one on each communicator, so that one's
  // communication overlaps the other's compute. Every rank of the group makes the same sequence
  // of calls. Returns what the calls above return, or the communicator's error. A stage with
  // ep_size > 1 must use these: the calls above DSMOE_CHECK-fail on its MoE layers.
  absl::StatusOr<Matrix<T>> Forward(const MicroBatch& batch, const Matrix<T>& x, Context* ctx,
                                    comm::Communicator& ep) const;
  absl::StatusOr<Matrix<T>> BackwardInput(Matrix<T> dy, Context* ctx, comm::Communicator& ep) const;
  absl::StatusOr<std::pair<Matrix<T>, Matrix<T>>> OverlappedForwardBackward(
      const MicroBatch& f_batch, const Matrix<T>& f_x, Context* f_ctx, comm::Communicator& f_ep,
      Matrix<T> b_dy, Context* b_ctx, comm::Communicator& b_ep) const;

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
