// ModelStage's expert-parallel calls: MoE layers run as phases with the all-to-alls of
// model/expert_exchange.h between them, written once as tasks (model/internal/comm_task.h) that
// suspend at each all-to-all, so that a call runs alone or interleaved with another micro-batch's.
// Instantiated for float only (comm has no f64).
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"
#include "model/expert_exchange.h"
#include "model/model_stage.h"

namespace model {

using internal::AwaitRequest;
using internal::CommTask;

namespace {

// Where an expert exchange failed, for its error: "layer 3 forward dispatch".
std::string Where(int layer, const char* pass, const char* exchange) {
  return absl::StrCat("layer ", layer, " ", pass, " ", exchange);
}

}  // namespace

template <typename T>
void ModelStage<T>::CheckEp(const comm::Communicator& ep) const {
  DSMOE_CHECK(ep.rank() == ep_rank_ && ep.size() == ep_size_, "ModelStage: EP rank ", ep.rank(),
              " of ", ep.size(), " for a stage built as ", ep_rank_, " of ", ep_size_);
}

template <typename T>
CommTask ModelStage<T>::ForwardTask(const MicroBatch& batch, const Matrix<T>& x, Context* ctx,
                                    comm::Communicator& ep, Matrix<T>* y) const {
  Matrix<T> h = ForwardBegin(batch, x, ctx);
  const BatchInfo info{batch.seq_len, batch.loss_scale};
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const DecoderBlock<T>& block = blocks_[i];
    typename DecoderBlock<T>::Context* block_ctx = &ctx->blocks[i];
    if (block.is_moe()) {
      const int layer = range_.begin_layer + static_cast<int>(i);
      const ExpertRows<T> send = block.ForwardDispatch(h, info, block_ctx);
      std::vector<int64_t> recv_counts;
      CO_ASSIGN_OR_RETURN(std::unique_ptr<comm::Request> counts,
                          StartCountExchange(ep, send.expert_counts, &recv_counts));
      CO_RETURN_IF_ERROR(core::Annotate(co_await AwaitRequest{counts.get()},
                                        Where(layer, "forward", "expert counts")));
      Matrix<T> rows;
      CO_ASSIGN_OR_RETURN(std::unique_ptr<comm::Request> dispatch,
                          StartRowExchange(ep, send.rows, send.expert_counts, recv_counts, &rows));
      CO_RETURN_IF_ERROR(core::Annotate(co_await AwaitRequest{dispatch.get()},
                                        Where(layer, "forward", "dispatch")));
      const Matrix<T> out = block.ForwardExperts(rows, recv_counts, block_ctx);
      Matrix<T> back;
      CO_ASSIGN_OR_RETURN(
          std::unique_ptr<comm::Request> combine,
          StartRowExchange(ep, out, block_ctx->moe.recv_counts, block_ctx->moe.loads, &back));
      CO_RETURN_IF_ERROR(
          core::Annotate(co_await AwaitRequest{combine.get()}, Where(layer, "forward", "combine")));
      h = block.ForwardCombine(std::move(back), block_ctx);
    } else {
      h = block.Forward(h, info, block_ctx);
    }
    ctx->aux_loss += block.AuxLoss(*block_ctx);
  }
  *y = ForwardEnd(batch, std::move(h), ctx);
  co_return absl::OkStatus();
}

template <typename T>
CommTask ModelStage<T>::BackwardInputTask(Matrix<T> dy, Context* ctx, comm::Communicator& ep,
                                          Matrix<T>* dx) const {
  dy = BackwardBegin(std::move(dy), ctx);
  for (size_t i = blocks_.size(); i-- > 0;) {
    const DecoderBlock<T>& block = blocks_[i];
    typename DecoderBlock<T>::Context* block_ctx = &ctx->blocks[i];
    if (!block.is_moe()) {
      dy = block.BackwardInput(std::move(dy), block_ctx);
      continue;
    }
    const int layer = range_.begin_layer + static_cast<int>(i);
    const Matrix<T> d_rows = block.BackwardCombine(std::move(dy), block_ctx);
    Matrix<T> d_in;
    CO_ASSIGN_OR_RETURN(
        std::unique_ptr<comm::Request> to_experts,
        StartRowExchange(ep, d_rows, block_ctx->moe.loads, block_ctx->moe.recv_counts, &d_in));
    CO_RETURN_IF_ERROR(core::Annotate(co_await AwaitRequest{to_experts.get()},
                                      Where(layer, "backward", "combine")));
    const Matrix<T> dx_rows = block.BackwardExperts(d_in, block_ctx);
    Matrix<T> dx_back;
    CO_ASSIGN_OR_RETURN(
        std::unique_ptr<comm::Request> back,
        StartRowExchange(ep, dx_rows, block_ctx->moe.recv_counts, block_ctx->moe.loads, &dx_back));
    CO_RETURN_IF_ERROR(
        core::Annotate(co_await AwaitRequest{back.get()}, Where(layer, "backward", "dispatch")));
    dy = block.BackwardDispatch(dx_back, block_ctx);
  }
  *dx = BackwardEnd(std::move(dy), ctx);
  co_return absl::OkStatus();
}

template <typename T>
absl::StatusOr<Matrix<T>> ModelStage<T>::Forward(const MicroBatch& batch, const Matrix<T>& x,
                                                 Context* ctx, comm::Communicator& ep) const {
  CheckEp(ep);
  Matrix<T> y;
  RETURN_IF_ERROR(internal::RunAlone(ForwardTask(batch, x, ctx, ep, &y)));
  return y;
}

template <typename T>
absl::StatusOr<Matrix<T>> ModelStage<T>::BackwardInput(Matrix<T> dy, Context* ctx,
                                                       comm::Communicator& ep) const {
  CheckEp(ep);
  Matrix<T> dx;
  RETURN_IF_ERROR(internal::RunAlone(BackwardInputTask(std::move(dy), ctx, ep, &dx)));
  return dx;
}

template <typename T>
absl::StatusOr<std::pair<Matrix<T>, Matrix<T>>> ModelStage<T>::OverlappedForwardBackward(
    const MicroBatch& f_batch, const Matrix<T>& f_x, Context* f_ctx, comm::Communicator& f_ep,
    Matrix<T> b_dy, Context* b_ctx, comm::Communicator& b_ep) const {
  return OverlappedForwardBackward(*this, f_batch, f_x, f_ctx, f_ep, *this, std::move(b_dy), b_ctx,
                                   b_ep);
}

template <typename T>
absl::StatusOr<std::pair<Matrix<T>, Matrix<T>>> ModelStage<T>::OverlappedForwardBackward(
    const ModelStage& f_stage, const MicroBatch& f_batch, const Matrix<T>& f_x, Context* f_ctx,
    comm::Communicator& f_ep, const ModelStage& b_stage, Matrix<T> b_dy, Context* b_ctx,
    comm::Communicator& b_ep) {
  DSMOE_CHECK(f_ctx != b_ctx, "OverlappedForwardBackward: one context for both micro-batches");
  DSMOE_CHECK(&f_ep != &b_ep, "OverlappedForwardBackward: one communicator for both micro-batches");
  f_stage.CheckEp(f_ep);
  b_stage.CheckEp(b_ep);
  std::pair<Matrix<T>, Matrix<T>> results;
  const auto [forward, backward] = internal::RunInterleaved(
      f_stage.ForwardTask(f_batch, f_x, f_ctx, f_ep, &results.first),
      b_stage.BackwardInputTask(std::move(b_dy), b_ctx, b_ep, &results.second));
  RETURN_IF_ERROR(forward);
  RETURN_IF_ERROR(backward);
  return results;
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
template absl::StatusOr<std::pair<Matrix<float>, Matrix<float>>>
ModelStage<float>::OverlappedForwardBackward(const ModelStage<float>&, const MicroBatch&,
                                             const Matrix<float>&, Context*, comm::Communicator&,
                                             const ModelStage<float>&, Matrix<float>, Context*,
                                             comm::Communicator&);

}  // namespace model
