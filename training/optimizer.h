// AdamW over a list of model parameters, and the learning-rate schedule.
//
//   AdamW adamw(config.optimizer(), stage.Params());
//   adamw.Step(LearningRate(config.optimizer(), step, config.steps()), clip_scale);
//
// Thread-safety: one thread uses an AdamW at a time.
#ifndef TRAINING_OPTIMIZER_H_
#define TRAINING_OPTIMIZER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/tensor.h"
#include "model/matrix.h"
#include "training/config.pb.h"

namespace training {

// The learning rate of update `step` (0-based) of `total_steps`: linear warmup from lr /
// warmup_steps to lr over the first warmup_steps updates, then cosine, linear or no decay to
// min_lr at the last update.
double LearningRate(const OptimizerConfig& config, int step, int total_steps);

// Decoupled weight decay Adam (Loshchilov & Hutter), as torch.optim.AdamW computes it:
//   p -= lr * weight_decay * p            (matrices only: norms and buffers are not decayed)
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
// where g is the parameter's gradient times `grad_scale` (clipping). Buffers (ParamKind::kBuffer)
// are skipped.
class AdamW {
 public:
  // `params` are not owned and must outlive the optimizer.
  AdamW(const OptimizerConfig& config, std::vector<model::Param<float>*> params);

  // One update with learning rate `lr`; then every gradient is zeroed.
  void Step(double lr, float grad_scale);

  int64_t steps() const { return steps_; }

  // The state as named host tensors: "<param>.exp_avg" and "<param>.exp_avg_sq" for each
  // trainable parameter, valid while the optimizer lives; plus "step" as one i64.
  std::vector<std::pair<std::string, core::TensorView>> State();
  // Restores what State() wrote from `tensors` (by name). INVALID_ARGUMENT naming a missing tensor
  // or a shape that does not fit; on error nothing changes.
  absl::Status LoadState(const std::vector<std::pair<std::string, core::TensorView>>& tensors);

 private:
  OptimizerConfig config_;
  std::vector<model::Param<float>*> params_;
  std::vector<model::Matrix<float>> exp_avg_, exp_avg_sq_;  // [param]
  int64_t steps_ = 0;
};

}  // namespace training

#endif  // TRAINING_OPTIMIZER_H_
