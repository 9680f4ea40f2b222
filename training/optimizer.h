// AdamW over a list of model parameters, whole or one data-parallel replica's shard (ZeRO-1), and
// the learning-rate schedule.
//
//   AdamW adamw(config.optimizer(), stage.Params());
//   adamw.Step(LearningRate(config.optimizer(), step, config.steps()), clip_scale);
//
// The flat space of a parameter list: the elements of its trainable parameters laid end to end in
// list order (buffers skipped), each parameter's in its row-major order. ZeRO-1 splits it into one
// contiguous shard per data-parallel replica (ShardOf); the replica's AdamW holds the moments of
// its shard only and updates only its shard's elements.
//
// Thread-safety: one thread uses an AdamW at a time.
#ifndef TRAINING_OPTIMIZER_H_
#define TRAINING_OPTIMIZER_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/tensor.h"
#include "model/matrix.h"
#include "training/config.pb.h"

namespace training {

// The learning rate of update `step` (0-based) of `total_steps`: linear warmup from lr /
// warmup_steps to lr over the first warmup_steps updates, then cosine, linear or no decay to
// min_lr at the last update.
double LearningRate(const OptimizerConfig& config, int step, int total_steps);

// Elements [begin, end) of a flat space.
struct FlatRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// The size of the flat space of `params`: the elements of its trainable parameters.
int64_t FlatSize(const std::vector<model::Param<float>*>& params);

// Replica `replica`'s shard of a flat space of `size` elements split over `replicas`: slices of
// ceil(size / replicas) elements in replica order, the last ones shorter (possibly empty).
// Precondition: 0 <= replica < replicas.
FlatRange ShardOf(int64_t size, int replica, int replicas);

// Calls fn(param, offset in the param, offset from range.begin, count) for each piece of `range`
// in the flat space of `params`, in order: `count` elements of one trainable parameter.
template <typename Fn>
void ForEachPiece(const std::vector<model::Param<float>*>& params, FlatRange range, Fn&& fn) {
  int64_t start = 0;  // of the current parameter in the flat space
  for (model::Param<float>* p : params) {
    if (!p->trainable()) continue;
    const int64_t size = p->value.size();
    const int64_t begin = std::max(range.begin, start), end = std::min(range.end, start + size);
    if (begin < end) fn(*p, begin - start, begin - range.begin, end - begin);
    start += size;
    if (start >= range.end) break;
  }
}

// Decoupled weight decay Adam (Loshchilov & Hutter), as torch.optim.AdamW computes it:
//   p -= lr * weight_decay * p            (matrices only: norms and buffers are not decayed)
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
// where g is the parameter's gradient times `grad_scale` (clipping), element by element over the
// optimizer's shard of the flat space. Buffers (ParamKind::kBuffer) are skipped.
class AdamW {
 public:
  // Holds the moments of, and updates, the elements `shard` of the flat space of `params`, which
  // are not owned and must outlive the optimizer. Precondition: 0 <= shard.begin <= shard.end <=
  // FlatSize(params).
  AdamW(const OptimizerConfig& config, std::vector<model::Param<float>*> params, FlatRange shard);
  // The whole flat space.
  AdamW(const OptimizerConfig& config, std::vector<model::Param<float>*> params);

  // One update of the shard's elements with learning rate `lr`; then every gradient, of the shard
  // or not, is zeroed. Elements outside the shard are unchanged (ZeRO-1 gathers them from the
  // replicas that own them).
  void Step(double lr, float grad_scale);

  int64_t steps() const { return steps_; }
  const FlatRange& shard() const { return shard_; }
  int64_t flat_size() const { return flat_size_; }
  // The shard's moments, shard().size() elements each: all the state the optimizer holds.
  absl::Span<float> exp_avg() { return absl::MakeSpan(exp_avg_); }
  absl::Span<float> exp_avg_sq() { return absl::MakeSpan(exp_avg_sq_); }

  // The state as the checkpoint's named host tensors: "<param>.exp_avg" and "<param>.exp_avg_sq"
  // of each trainable parameter, viewing `exp_avg` and `exp_avg_sq`, the moments of the whole flat
  // space (flat_size() elements each: this optimizer's own when its shard is all of it, else
  // gathered from every shard); plus "step" as one i64. Valid while those buffers and the optimizer
  // live.
  std::vector<std::pair<std::string, core::TensorView>> State(absl::Span<float> exp_avg,
                                                              absl::Span<float> exp_avg_sq);
  // Restores the shard's part of a whole state as State wrote it, from `tensors` (by name).
  // INVALID_ARGUMENT naming a missing tensor or a shape that does not fit; on error nothing
  // changes.
  absl::Status LoadState(const std::vector<std::pair<std::string, core::TensorView>>& tensors);

 private:
  OptimizerConfig config_;
  std::vector<model::Param<float>*> params_;
  int64_t flat_size_;
  FlatRange shard_;
  std::vector<float> exp_avg_, exp_avg_sq_;  // [shard_.size()]
  int64_t steps_ = 0;
};

}  // namespace training

#endif  // TRAINING_OPTIMIZER_H_
