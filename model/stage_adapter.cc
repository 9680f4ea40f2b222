#include "model/stage_adapter.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace model {

absl::StatusOr<std::unique_ptr<StageAdapter>> StageAdapter::Create(ModelStage<float>* stage,
                                                                   std::vector<MicroBatch> batches,
                                                                   EpComms ep) {
  for (size_t i = 0; i < batches.size(); ++i) {
    if (const absl::Status s = stage->Validate(batches[i]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("batches[", i, "]: ", s.message()));
    }
    if (batches[i].tokens.size() != batches[0].tokens.size()) {
      return absl::InvalidArgumentError(absl::StrCat("batches[", i, "]: ", batches[i].tokens.size(),
                                                     " tokens, batches[0] has ",
                                                     batches[0].tokens.size()));
    }
  }
  if (stage->ep_size() == 1) {
    if (ep.forward != nullptr || ep.backward != nullptr) {
      return absl::InvalidArgumentError("ep: communicators for a stage without expert parallelism");
    }
  } else {
    for (const comm::Communicator* c : {ep.forward, ep.backward}) {
      if (c == nullptr || c->rank() != stage->ep_rank() || c->size() != stage->ep_size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("ep: needs a forward and a backward communicator of rank ",
                         stage->ep_rank(), " of ", stage->ep_size()));
      }
    }
    if (ep.forward == ep.backward) {
      return absl::InvalidArgumentError("ep: forward and backward share one communicator");
    }
  }
  return std::unique_ptr<StageAdapter>(new StageAdapter(stage, std::move(batches), ep));
}

StageAdapter::StageAdapter(ModelStage<float>* stage, std::vector<MicroBatch> batches, EpComms ep)
    : stage_(stage),
      batches_(std::move(batches)),
      ep_(ep),
      losses_(batches_.size()),
      loads_(stage->blocks().size()) {}

size_t StageAdapter::ActivationBytes() const {
  const size_t tokens = batches_.empty() ? 0 : batches_[0].tokens.size();
  return tokens * static_cast<size_t>(stage_->config().hidden_size()) * sizeof(float);
}

size_t StageAdapter::InputBytes() const {
  return stage_->range().has_embedding ? 0 : ActivationBytes();
}

size_t StageAdapter::OutputBytes() const {
  return stage_->range().has_head ? 0 : ActivationBytes();
}

absl::Status StageAdapter::CheckCall(int microbatch, size_t bytes, size_t expected,
                                     const char* what) const {
  if (microbatch < 0 || microbatch >= static_cast<int>(batches_.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("microbatch ", microbatch, " outside [0, ", batches_.size(), ")"));
  }
  if (bytes != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", bytes, " bytes, the stage needs ", expected));
  }
  return absl::OkStatus();
}

Matrix<float> StageAdapter::FromBytes(absl::Span<const std::byte> bytes) const {
  if (bytes.empty()) return Matrix<float>();
  const int64_t hidden = stage_->config().hidden_size();
  Matrix<float> m(static_cast<int64_t>(bytes.size() / sizeof(float)) / hidden, hidden);
  std::memcpy(m.data(), bytes.data(), bytes.size());
  return m;
}

void StageAdapter::ToBytes(const Matrix<float>& m, absl::Span<std::byte> bytes) {
  if (!bytes.empty()) std::memcpy(bytes.data(), m.data(), bytes.size());
}

absl::StatusOr<StageAdapter::InFlight*> StageAdapter::StartForward(
    int microbatch, absl::Span<const std::byte> input, absl::Span<std::byte> output) {
  RETURN_IF_ERROR(CheckCall(microbatch, input.size(), InputBytes(), "input"));
  RETURN_IF_ERROR(CheckCall(microbatch, output.size(), OutputBytes(), "output"));
  auto [it, inserted] = in_flight_.try_emplace(microbatch);
  if (!inserted) {
    return absl::FailedPreconditionError(
        absl::StrCat("Forward of microbatch ", microbatch, " again before its BackwardWeight"));
  }
  return &it->second;
}

absl::StatusOr<StageAdapter::InFlight*> StageAdapter::StartBackward(
    int microbatch, absl::Span<const std::byte> output_grad, absl::Span<std::byte> input_grad) {
  RETURN_IF_ERROR(CheckCall(microbatch, output_grad.size(), OutputBytes(), "output_grad"));
  // The first stage may be handed an empty input_grad or one of InputBytes() == 0 bytes alike.
  RETURN_IF_ERROR(CheckCall(microbatch, input_grad.size(), InputBytes(), "input_grad"));
  auto it = in_flight_.find(microbatch);
  if (it == in_flight_.end() || it->second.backward_input_done) {
    return absl::FailedPreconditionError(
        absl::StrCat("BackwardInput of microbatch ", microbatch,
                     it == in_flight_.end() ? " before its Forward" : " twice"));
  }
  return &it->second;
}

void StageAdapter::FinishForward(int microbatch, const Matrix<float>& result,
                                 const InFlight& in_flight, absl::Span<std::byte> output) {
  losses_[microbatch] = in_flight.ctx.aux_loss;
  const std::vector<DecoderBlock<float>>& blocks = stage_->blocks();
  for (size_t b = 0; b < blocks.size(); ++b) {
    const std::vector<int64_t>& loads = blocks[b].MoeLoads(in_flight.ctx.blocks[b]);
    if (loads_[b].empty()) loads_[b].assign(loads.size(), 0);
    for (size_t e = 0; e < loads.size(); ++e) loads_[b][e] += loads[e];
  }
  if (stage_->range().has_head) {
    *losses_[microbatch] += result(0, 0);
  } else {
    ToBytes(result, output);
  }
}

absl::Status StageAdapter::Forward(int microbatch, absl::Span<const std::byte> input,
                                   absl::Span<std::byte> output) {
  ASSIGN_OR_RETURN(InFlight * in_flight, StartForward(microbatch, input, output));
  const MicroBatch& batch = batches_[microbatch];
  absl::StatusOr<Matrix<float>> result =
      ep_.forward != nullptr
          ? stage_->Forward(batch, FromBytes(input), &in_flight->ctx, *ep_.forward)
          : stage_->Forward(batch, FromBytes(input), &in_flight->ctx);
  if (!result.ok()) {
    in_flight_.erase(microbatch);
    return core::Annotate(result.status(), absl::StrCat("micro-batch ", microbatch));
  }
  FinishForward(microbatch, *result, *in_flight, output);
  return absl::OkStatus();
}

absl::Status StageAdapter::BackwardInput(int microbatch, absl::Span<const std::byte> output_grad,
                                         absl::Span<std::byte> input_grad) {
  ASSIGN_OR_RETURN(InFlight * in_flight, StartBackward(microbatch, output_grad, input_grad));
  Matrix<float> dy = FromBytes(output_grad);
  ASSIGN_OR_RETURN_WITH(
      const Matrix<float> dx,
      ep_.backward != nullptr
          ? stage_->BackwardInput(std::move(dy), &in_flight->ctx, *ep_.backward)
          : absl::StatusOr<Matrix<float>>(stage_->BackwardInput(std::move(dy), &in_flight->ctx)),
      "micro-batch ", microbatch);
  ToBytes(dx, input_grad);
  in_flight->backward_input_done = true;
  return absl::OkStatus();
}

absl::Status StageAdapter::BackwardWeight(int microbatch) {
  auto it = in_flight_.find(microbatch);
  if (it == in_flight_.end() || !it->second.backward_input_done) {
    return absl::FailedPreconditionError(
        absl::StrCat("BackwardWeight of microbatch ", microbatch, " before its BackwardInput"));
  }
  stage_->BackwardWeight(&it->second.ctx);
  in_flight_.erase(it);
  return absl::OkStatus();
}

absl::Status StageAdapter::OverlappedForwardBackward(int forward_microbatch,
                                                     absl::Span<const std::byte> input,
                                                     absl::Span<std::byte> output,
                                                     Stage& backward_stage, int backward_microbatch,
                                                     absl::Span<const std::byte> output_grad,
                                                     absl::Span<std::byte> input_grad) {
  auto* other = dynamic_cast<StageAdapter*>(&backward_stage);
  if (ep_.forward == nullptr || other == nullptr || other->ep_.backward == nullptr) {
    // No all-to-all to hide: one after the other, as DeepSeek's example stage does.
    RETURN_IF_ERROR(Forward(forward_microbatch, input, output));
    return backward_stage.Backward(backward_microbatch, output_grad, input_grad);
  }
  // Both contexts are found or made before the pair runs.
  ASSIGN_OR_RETURN(InFlight * b,
                   other->StartBackward(backward_microbatch, output_grad, input_grad));
  ASSIGN_OR_RETURN(InFlight * f, StartForward(forward_microbatch, input, output));
  absl::StatusOr<std::pair<Matrix<float>, Matrix<float>>> results =
      ModelStage<float>::OverlappedForwardBackward(
          *stage_, batches_[forward_microbatch], FromBytes(input), &f->ctx, *ep_.forward,
          *other->stage_, FromBytes(output_grad), &b->ctx, *other->ep_.backward);
  if (!results.ok()) {
    in_flight_.erase(forward_microbatch);
    return core::Annotate(results.status(),
                          absl::StrCat("micro-batches ", forward_microbatch, " (forward) and ",
                                       backward_microbatch, " (backward)"));
  }
  FinishForward(forward_microbatch, results->first, *f, output);
  ToBytes(results->second, input_grad);
  b->backward_input_done = true;
  return other->BackwardWeight(backward_microbatch);
}

absl::StatusOr<float> StageAdapter::Loss(int microbatch) const {
  if (microbatch < 0 || microbatch >= static_cast<int>(losses_.size()) ||
      !losses_[microbatch].has_value()) {
    return absl::NotFoundError(absl::StrCat("no Forward of microbatch ", microbatch, " yet"));
  }
  return *losses_[microbatch];
}

}  // namespace model
