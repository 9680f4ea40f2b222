// ModelStage behind dualpipe::Stage, so that a pipeline executor can drive the model's layers
// without knowing them. Activations and their gradients cross the interface as the bytes of f32
// [tokens, hidden] row-major matrices; the first stage reads its micro-batches' tokens and the
// last stage their targets from the MicroBatch list given at construction, so the first stage's
// input and the last stage's output are empty (0 bytes).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<StageAdapter> stage,
//                    StageAdapter::Create(&model_stage, micro_batches));
//   RETURN_IF_ERROR(stage->Forward(0, input, output));   // dualpipe::Stage calls
#ifndef MODEL_STAGE_ADAPTER_H_
#define MODEL_STAGE_ADAPTER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "comm/communicator.h"
#include "dualpipe/stage.h"
#include "model/model_stage.h"

namespace model {

// The EP group's communicators for a stage built with ep_size > 1: forward micro-batches'
// all-to-alls go over `forward`, backward ones over `backward`, so that those of an overlapped
// pair run concurrently. Both null for a stage without expert parallelism. A rank's two stages
// (DualPipe) may share one pair: an overlapped pair always uses one stage's forward communicator
// and the other's backward one.
struct EpComms {
  comm::Communicator* forward = nullptr;
  comm::Communicator* backward = nullptr;
};

// Thread-safety as dualpipe::Stage: one thread at a time calls a StageAdapter. Two adapters must
// not wrap the same ModelStage (an overlapped pair would run one's BackwardWeight during the
// other's Forward).
class StageAdapter : public dualpipe::Stage {
 public:
  // Wraps `stage` (not owned; must outlive the adapter). Micro-batch i of the Stage calls is
  // batches[i]. INVALID_ARGUMENT if a batch fails stage->Validate, if the batches' token counts
  // differ (the interface has one activation size), or if `ep` does not suit the stage's EP size
  // (both set, distinct, of the stage's EP rank and size, when ep_size > 1; both null otherwise).
  static absl::StatusOr<std::unique_ptr<StageAdapter>> Create(ModelStage<float>* stage,
                                                              std::vector<MicroBatch> batches,
                                                              EpComms ep = {});

  // tokens * hidden * sizeof(float); 0 for the first stage's input and the last stage's output.
  size_t InputBytes() const override;
  size_t OutputBytes() const override;

  // dualpipe::Stage calls. INVALID_ARGUMENT for a micro-batch outside the batch list or a span of
  // the wrong size; FAILED_PRECONDITION for calls out of order (a second Forward, a backward
  // before its Forward, BackwardWeight before BackwardInput); the communicator's error under EP.
  absl::Status Forward(int microbatch, absl::Span<const std::byte> input,
                       absl::Span<std::byte> output) override;
  absl::Status BackwardInput(int microbatch, absl::Span<const std::byte> output_grad,
                             absl::Span<std::byte> input_grad) override;
  absl::Status BackwardWeight(int microbatch) override;
  // With expert parallelism and backward_stage a StageAdapter (this one, or the rank's other
  // stage under DualPipe), ModelStage::OverlappedForwardBackward (the forward and the backward
  // input pass interleaved on this thread, each micro-batch's all-to-alls overlapping the other's
  // compute) then the backward's weight pass; otherwise Forward then backward_stage.Backward.
  absl::Status OverlappedForwardBackward(int forward_microbatch, absl::Span<const std::byte> input,
                                         absl::Span<std::byte> output, Stage& backward_stage,
                                         int backward_microbatch,
                                         absl::Span<const std::byte> output_grad,
                                         absl::Span<std::byte> input_grad) override;

  // This stage's part of micro-batch i's loss, from its latest Forward: its MoE balance losses,
  // plus the cross-entropy on the last stage. NOT_FOUND before any Forward of it.
  absl::StatusOr<float> Loss(int microbatch) const override;

  // [block of the stage] -> tokens routed to each expert, summed over this adapter's forwards so
  // far (this rank's tokens only; empty for dense blocks): the load statistics of a step, for the
  // auxiliary-loss-free bias update and for EPLB.
  const std::vector<std::vector<int64_t>>& loads() const { return loads_; }

 private:
  struct InFlight {
    ModelStage<float>::Context ctx;
    bool backward_input_done = false;
  };

  StageAdapter(ModelStage<float>* stage, std::vector<MicroBatch> batches, EpComms ep);

  size_t ActivationBytes() const;
  // OK if `microbatch` is in the batch list and `bytes` has `expected` bytes (`what` names it).
  absl::Status CheckCall(int microbatch, size_t bytes, size_t expected, const char* what) const;
  // The checks of Forward and BackwardInput; on success the context to use.
  absl::StatusOr<InFlight*> StartForward(int microbatch, absl::Span<const std::byte> input,
                                         absl::Span<std::byte> output);
  absl::StatusOr<InFlight*> StartBackward(int microbatch, absl::Span<const std::byte> output_grad,
                                          absl::Span<std::byte> input_grad);
  // The activation in `bytes` (empty span: an empty matrix), and back.
  Matrix<float> FromBytes(absl::Span<const std::byte> bytes) const;
  static void ToBytes(const Matrix<float>& m, absl::Span<std::byte> bytes);
  // Stores a forward's loss and writes its activation.
  void FinishForward(int microbatch, const Matrix<float>& result, const InFlight& in_flight,
                     absl::Span<std::byte> output);

  ModelStage<float>* stage_;
  std::vector<MicroBatch> batches_;
  EpComms ep_;
  std::map<int, InFlight> in_flight_;         // by micro-batch, from Forward to BackwardWeight
  std::vector<std::optional<float>> losses_;  // by micro-batch
  std::vector<std::vector<int64_t>> loads_;   // by block, then expert
};

}  // namespace model

#endif  // MODEL_STAGE_ADAPTER_H_
