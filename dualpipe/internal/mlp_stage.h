// A small deterministic pipeline stage for the executor's tests and benchmark: DeepSeek's
// example_dualpipe.py stage, Linear(dim -> hidden, no bias) -> GELU (erf) -> Linear(hidden -> dim,
// no bias), in f32 through OpenBLAS, with an MSE loss on the last stage. Weights, inputs and
// targets come from a seed, so every rank and a sequential single-rank run build the same model.
//
// Activations cross the Stage interface as f32 [tokens, dim] row-major bytes. The last stage's
// output is empty; its loss is mean((y - target)^2) over tokens * dim, and it seeds its backward
// with that loss's gradient.
#ifndef DUALPIPE_INTERNAL_MLP_STAGE_H_
#define DUALPIPE_INTERNAL_MLP_STAGE_H_

#include <cstddef>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dualpipe/placement.h"
#include "dualpipe/schedule.h"
#include "dualpipe/stage.h"

namespace dualpipe::internal {

struct MlpSpec {
  int num_stages = 4;  // model stages
  int dim = 8;
  int hidden = 32;
  int tokens = 4;  // per micro-batch
  unsigned seed = 1;
};

// Deterministic data of global micro-batch `microbatch`: the input ([tokens, dim]) and the target.
std::vector<float> MlpInput(const MlpSpec& spec, int microbatch);
std::vector<float> MlpTarget(const MlpSpec& spec, int microbatch);

class MlpStage : public Stage {
 public:
  // Model stage `stage` of `spec`; route-local micro-batch m is global micro-batch
  // first_microbatch + m (for the last stage's targets).
  MlpStage(const MlpSpec& spec, int stage, int first_microbatch);

  size_t InputBytes() const override;
  size_t OutputBytes() const override;
  absl::Status Forward(int microbatch, absl::Span<const std::byte> input,
                       absl::Span<std::byte> output) override;
  absl::Status BackwardInput(int microbatch, absl::Span<const std::byte> output_grad,
                             absl::Span<std::byte> input_grad) override;
  absl::Status BackwardWeight(int microbatch) override;
  // The last stage's MSE of `microbatch`; UNIMPLEMENTED on other stages.
  absl::StatusOr<float> Loss(int microbatch) const override;

  // Accumulated gradients: [hidden, dim] and [dim, hidden].
  const std::vector<float>& grad_w1() const { return grad_w1_; }
  const std::vector<float>& grad_w2() const { return grad_w2_; }
  // Micro-batches with saved state (forwarded and not yet through BackwardWeight).
  int in_flight() const { return static_cast<int>(saved_.size()); }

 private:
  struct Saved {
    std::vector<float> x;          // [tokens, dim]
    std::vector<float> a;          // [tokens, hidden], after GELU
    std::vector<float> gelu_grad;  // [tokens, hidden], GELU's derivative at its input
    std::vector<float> y;          // [tokens, dim], last stage only
    std::vector<float> dy;         // [tokens, dim], from BackwardInput
    std::vector<float> dh;         // [tokens, hidden], from BackwardInput
    bool backward_input_done = false;
  };

  bool first() const { return stage_ == 0; }
  bool last() const { return stage_ == spec_.num_stages - 1; }

  MlpSpec spec_;
  int stage_;
  int first_microbatch_;
  std::vector<float> w1_, w2_;  // [hidden, dim], [dim, hidden]
  std::vector<float> grad_w1_, grad_w2_;
  std::map<int, Saved> saved_;
  std::vector<float> scratch_hidden_;  // [tokens, hidden], Forward's pre-activation
  std::map<int, float> losses_;
};

// The stages `rank` hosts under `schedule` (model stage and micro-batch numbering from
// HostedStages), owned here, and the executor's stage list by path.
struct HostedMlpStages {
  std::vector<std::unique_ptr<MlpStage>> owned;
  std::vector<Stage*> by_path;  // null where the rank hosts no stage
};
HostedMlpStages MakeHostedStages(const MlpSpec& spec, const Schedule& schedule, int rank);

// MlpInput of global micro-batches 0 .. microbatches - 1, as bytes.
std::vector<std::vector<std::byte>> MlpInputBytes(const MlpSpec& spec, int microbatches);

// `steps` steps of the whole model on one rank, micro-batch by micro-batch: forward through every
// stage, then the full backward, in global micro-batch order (weights do not change between
// steps; gradients accumulate). Route r's micro-batches (global
// indices [first, first + count) per `routes`) use their own copy of the stages, as DualPipe's two
// directions do, so that each copy accumulates its gradients in the order the executor does.
struct SequentialResult {
  std::vector<float> losses;                        // [global micro-batch]
  std::vector<std::vector<std::vector<float>>> w1;  // [route][stage] accumulated grad_w1
  std::vector<std::vector<std::vector<float>>> w2;  // [route][stage] accumulated grad_w2
};
struct RouteMicrobatches {
  int first = 0;
  int count = 0;
};
absl::StatusOr<SequentialResult> RunSequential(const MlpSpec& spec,
                                               const std::vector<RouteMicrobatches>& routes,
                                               int steps = 1);

}  // namespace dualpipe::internal

#endif  // DUALPIPE_INTERNAL_MLP_STAGE_H_
