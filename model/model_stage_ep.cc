// ModelStage's expert-parallel calls: MoE layers run as phases with the all-to-alls of
// model/expert_exchange.h between them. Instantiated for float only (comm has no f64).
#include <thread>

#include "core/check.h"
#include "core/status_macros.h"
#include "model/expert_exchange.h"
#include "model/model_stage.h"

namespace model {

template <typename T>
absl::StatusOr<Matrix<T>> ModelStage<T>::Forward(const MicroBatch& batch, const Matrix<T>& x,
                                                 Context* ctx, comm::Communicator& ep) const {
  DSMOE_CHECK(ep.rank() == ep_rank_ && ep.size() == ep_size_, "ModelStage: EP rank ", ep.rank(),
              " of ", ep.size(), " for a stage built as ", ep_rank_, " of ", ep_size_);
  Matrix<T> h = ForwardBegin(batch, x, ctx);
  const BatchInfo info{batch.seq_len, batch.loss_scale};
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const DecoderBlock<T>& block = blocks_[i];
    typename DecoderBlock<T>::Context* block_ctx = &ctx->blocks[i];
    if (block.is_moe()) {
      const ExpertRows<T> send = block.ForwardDispatch(h, info, block_ctx);
      ASSIGN_OR_RETURN(const ExpertInput in, DispatchToExperts(ep, send));
      const Matrix<T> out = block.ForwardExperts(in.rows, in.recv_counts, block_ctx);
      ASSIGN_OR_RETURN(Matrix<T> back, ReturnFromExperts(ep, out, block_ctx->moe.recv_counts,
                                                         block_ctx->moe.loads));
      h = block.ForwardCombine(std::move(back), block_ctx);
    } else {
      h = block.Forward(h, info, block_ctx);
    }
    ctx->aux_loss += block.AuxLoss(*block_ctx);
  }
  return ForwardEnd(batch, std::move(h), ctx);
}

template <typename T>
absl::StatusOr<Matrix<T>> ModelStage<T>::BackwardInput(Matrix<T> dy, Context* ctx,
                                                       comm::Communicator& ep) const {
  DSMOE_CHECK(ep.rank() == ep_rank_ && ep.size() == ep_size_, "ModelStage: EP rank ", ep.rank(),
              " of ", ep.size(), " for a stage built as ", ep_rank_, " of ", ep_size_);
  dy = BackwardBegin(std::move(dy), ctx);
  for (size_t i = blocks_.size(); i-- > 0;) {
    const DecoderBlock<T>& block = blocks_[i];
    typename DecoderBlock<T>::Context* block_ctx = &ctx->blocks[i];
    if (!block.is_moe()) {
      dy = block.BackwardInput(std::move(dy), block_ctx);
      continue;
    }
    const Matrix<T> d_rows = block.BackwardCombine(std::move(dy), block_ctx);
    ASSIGN_OR_RETURN(const Matrix<T> d_in,
                     SendToExperts(ep, d_rows, block_ctx->moe.loads, block_ctx->moe.recv_counts));
    const Matrix<T> dx_rows = block.BackwardExperts(d_in, block_ctx);
    ASSIGN_OR_RETURN(
        const Matrix<T> dx_back,
        ReturnFromExperts(ep, dx_rows, block_ctx->moe.recv_counts, block_ctx->moe.loads));
    dy = block.BackwardDispatch(dx_back, block_ctx);
  }
  return BackwardEnd(std::move(dy), ctx);
}

template <typename T>
absl::StatusOr<std::pair<Matrix<T>, Matrix<T>>> ModelStage<T>::OverlappedForwardBackward(
    const MicroBatch& f_batch, const Matrix<T>& f_x, Context* f_ctx, comm::Communicator& f_ep,
    Matrix<T> b_dy, Context* b_ctx, comm::Communicator& b_ep) const {
  DSMOE_CHECK(f_ctx != b_ctx, "OverlappedForwardBackward: one context for both micro-batches");
  DSMOE_CHECK(&f_ep != &b_ep, "OverlappedForwardBackward: one communicator for both micro-batches");
  // While one thread waits in an all-to-all, the other computes.
  absl::StatusOr<Matrix<T>> dx;
  std::thread backward([&] { dx = BackwardInput(std::move(b_dy), b_ctx, b_ep); });
  absl::StatusOr<Matrix<T>> y = Forward(f_batch, f_x, f_ctx, f_ep);
  backward.join();
  RETURN_IF_ERROR(y.status());
  RETURN_IF_ERROR(dx.status());
  return std::make_pair(*std::move(y), *std::move(dx));
}

template absl::StatusOr<Matrix<float>> ModelStage<float>::Forward(const MicroBatch&,
                                                                  const Matrix<float>&, Context*,
                                                                  comm::Communicator&) const;
template absl::StatusOr<Matrix<float>> ModelStage<float>::BackwardInput(Matrix<float>, Context*,
                                                                        comm::Communicator&) const;
template absl::StatusOr<std::pair<Matrix<float>, Matrix<float>>>
ModelStage<float>::OverlappedForwardBackward(const MicroBatch&, const Matrix<float>&, Context*,
                                             comm::Communicator&, Matrix<float>, Context*,
                                             comm::Communicator&) const;

}  // namespace model
