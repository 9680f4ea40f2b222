// The interface a schedule executor drives: one pipeline stage's compute, per micro-batch.
// Tensor-agnostic: activations and gradients cross it as byte buffers in the memory of the
// stage's device (host or GPU), so dualpipe does not depend on model/. Model stages implement it;
// tests implement it with tiny MLPs.
#ifndef DUALPIPE_STAGE_H_
#define DUALPIPE_STAGE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dualpipe {

// One stage of a pipeline. A rank running DualPipe or DualPipeV holds two Stage objects. The
// executor calls a stage from one thread at a time; a stage keeps whatever a later backward of
// the same micro-batch needs (saved activations) and frees it there. Buffers passed in are owned
// by the caller and valid only during the call.
class Stage {
 public:
  virtual ~Stage() = default;

  // Bytes of the activation this stage receives (`input`) and sends on (`output`) per micro-batch.
  virtual size_t InputBytes() const = 0;
  virtual size_t OutputBytes() const = 0;

  // Forward of `microbatch`: reads `input` (InputBytes() bytes; on the first stage, the data),
  // writes `output` (OutputBytes() bytes). The last stage also computes the loss and may leave
  // `output` empty. Errors: InvalidArgument on wrong sizes; the stage's own failures.
  virtual absl::Status Forward(int microbatch, absl::Span<const std::byte> input,
                               absl::Span<std::byte> output) = 0;

  // Backward for inputs of `microbatch` (after its Forward): reads the gradient of the output
  // (empty on the last stage, which seeds it from its loss) and writes the gradient of the input
  // (InputBytes() bytes; the first stage may receive an empty span). Keeps what BackwardWeight
  // needs.
  virtual absl::Status BackwardInput(int microbatch, absl::Span<const std::byte> output_grad,
                                     absl::Span<std::byte> input_grad) = 0;

  // Weight gradient of `microbatch` (after its BackwardInput): accumulates into the stage's
  // parameter gradients and frees what was kept for it.
  virtual absl::Status BackwardWeight(int microbatch) = 0;

  // This stage's part of `microbatch`'s loss, from its latest Forward (the cross-entropy on the
  // last stage; auxiliary losses such as MoE balance terms on any stage). The executor sums the
  // parts of all stages. UNIMPLEMENTED (the default) for stages that contribute no loss.
  virtual absl::StatusOr<float> Loss(int microbatch) const {
    return absl::UnimplementedError("this stage has no loss");
  }

  // Full backward: BackwardInput then BackwardWeight. Stages may fuse the two.
  virtual absl::Status Backward(int microbatch, absl::Span<const std::byte> output_grad,
                                absl::Span<std::byte> input_grad) {
    if (absl::Status s = BackwardInput(microbatch, output_grad, input_grad); !s.ok()) return s;
    return BackwardWeight(microbatch);
  }

  // Forward of `forward_microbatch` on this stage overlapped with the full backward of
  // `backward_microbatch` on `backward_stage` (the other stage of the same rank, or this one),
  // so that one's communication hides behind the other's compute. The default runs them one
  // after the other; stages that can interleave them (MoE all-to-all) override it.
  virtual absl::Status OverlappedForwardBackward(int forward_microbatch,
                                                 absl::Span<const std::byte> input,
                                                 absl::Span<std::byte> output,
                                                 Stage& backward_stage, int backward_microbatch,
                                                 absl::Span<const std::byte> output_grad,
                                                 absl::Span<std::byte> input_grad) {
    if (absl::Status s = Forward(forward_microbatch, input, output); !s.ok()) return s;
    return backward_stage.Backward(backward_microbatch, output_grad, input_grad);
  }
};

}  // namespace dualpipe

#endif  // DUALPIPE_STAGE_H_
