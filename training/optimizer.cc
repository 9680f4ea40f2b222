#include "training/optimizer.h"

#include <cmath>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"

namespace training {

double LearningRate(const OptimizerConfig& config, int step, int total_steps) {
  const int warmup = config.warmup_steps();
  if (step < warmup) return config.lr() * (step + 1) / warmup;
  const int decay_steps = total_steps - warmup - 1;
  if (config.decay() == "constant" || decay_steps <= 0) return config.lr();
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / decay_steps);
  const double shape =
      config.decay() == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(M_PI * progress));
  return config.min_lr() + (config.lr() - config.min_lr()) * shape;
}

int64_t FlatSize(const std::vector<model::Param<float>*>& params) {
  int64_t size = 0;
  for (const model::Param<float>* p : params) {
    if (p->trainable()) size += p->value.size();
  }
  return size;
}

FlatRange ShardOf(int64_t size, int replica, int replicas) {
  DSMOE_CHECK(replica >= 0 && replica < replicas, "replica ", replica, " of ", replicas);
  const int64_t slice = (size + replicas - 1) / replicas;
  return {std::min(size, replica * slice), std::min(size, (replica + 1) * slice)};
}

AdamW::AdamW(const OptimizerConfig& config, std::vector<model::Param<float>*> params,
             FlatRange shard)
    : config_(config),
      params_(std::move(params)),
      flat_size_(FlatSize(params_)),
      shard_(shard),
      exp_avg_(shard.size(), 0.0f),
      exp_avg_sq_(shard.size(), 0.0f) {
  DSMOE_CHECK(0 <= shard.begin && shard.begin <= shard.end && shard.end <= flat_size_, "shard [",
              shard.begin, ", ", shard.end, ") of a flat space of ", flat_size_);
}

AdamW::AdamW(const OptimizerConfig& config, std::vector<model::Param<float>*> params)
    : AdamW(config, params, FlatRange{0, FlatSize(params)}) {}

void AdamW::Step(double lr, float grad_scale) {
  ++steps_;
  const float beta1 = static_cast<float>(config_.beta1());
  const float beta2 = static_cast<float>(config_.beta2());
  const double correction1 = 1.0 - std::pow(config_.beta1(), static_cast<double>(steps_));
  const double correction2 = 1.0 - std::pow(config_.beta2(), static_cast<double>(steps_));
  const float step_size = static_cast<float>(lr / correction1);
  const float inv_sqrt_correction2 = static_cast<float>(1.0 / std::sqrt(correction2));
  const float eps = static_cast<float>(config_.eps());
  const float decay = static_cast<float>(1.0 - lr * config_.weight_decay());
  ForEachPiece(params_, shard_,
               [&](model::Param<float>& p, int64_t at, int64_t state_at, int64_t count) {
                 float* value = p.value.data() + at;
                 const float* grad = p.grad.data() + at;
                 float* m = exp_avg_.data() + state_at;
                 float* v = exp_avg_sq_.data() + state_at;
                 const bool decays = p.kind == model::ParamKind::kMatrix;
                 for (int64_t j = 0; j < count; ++j) {
                   const float g = grad[j] * grad_scale;
                   if (decays) value[j] *= decay;
                   m[j] = beta1 * m[j] + (1 - beta1) * g;
                   v[j] = beta2 * v[j] + (1 - beta2) * g * g;
                   value[j] -= step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_correction2 + eps);
                 }
               });
  model::ZeroGrads(params_);
}

std::vector<std::pair<std::string, core::TensorView>> AdamW::State(absl::Span<float> exp_avg,
                                                                   absl::Span<float> exp_avg_sq) {
  DSMOE_CHECK(static_cast<int64_t>(exp_avg.size()) == flat_size_ &&
                  static_cast<int64_t>(exp_avg_sq.size()) == flat_size_,
              "the whole state has ", flat_size_, " elements, got ", exp_avg.size(), " and ",
              exp_avg_sq.size());
  std::vector<std::pair<std::string, core::TensorView>> state;
  ForEachPiece(params_, {0, flat_size_}, [&](model::Param<float>& p, int64_t, int64_t at, int64_t) {
    state.emplace_back(p.name + ".exp_avg", core::TensorView(exp_avg.data() + at, core::DType::kF32,
                                                             core::Shape(p.shape())));
    state.emplace_back(
        p.name + ".exp_avg_sq",
        core::TensorView(exp_avg_sq.data() + at, core::DType::kF32, core::Shape(p.shape())));
  });
  state.emplace_back("step", core::TensorView(&steps_, core::DType::kI64, core::Shape({1})));
  return state;
}

absl::Status AdamW::LoadState(
    const std::vector<std::pair<std::string, core::TensorView>>& tensors) {
  std::map<std::string, core::TensorView> by_name(tensors.begin(), tensors.end());
  // Check everything first, then copy.
  const auto find = [&](const std::string& name, core::DType dtype,
                        const core::Shape& shape) -> absl::Status {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat("optimizer state: no tensor '", name, "'"));
    }
    if (it->second.shape() != shape || it->second.dtype() != dtype) {
      return absl::InvalidArgumentError(absl::StrCat("optimizer state: tensor '", name,
                                                     "' has shape ", it->second.shape().ToString(),
                                                     ", expected ", shape.ToString()));
    }
    return absl::OkStatus();
  };
  for (const model::Param<float>* p : params_) {
    if (!p->trainable()) continue;
    for (const char* moment : {".exp_avg", ".exp_avg_sq"}) {
      RETURN_IF_ERROR(find(p->name + moment, core::DType::kF32, core::Shape(p->shape())));
    }
  }
  RETURN_IF_ERROR(find("step", core::DType::kI64, core::Shape({1})));
  ForEachPiece(params_, shard_,
               [&](model::Param<float>& p, int64_t at, int64_t state_at, int64_t count) {
                 std::copy_n(by_name.at(p.name + ".exp_avg").data<float>() + at, count,
                             exp_avg_.data() + state_at);
                 std::copy_n(by_name.at(p.name + ".exp_avg_sq").data<float>() + at, count,
                             exp_avg_sq_.data() + state_at);
               });
  steps_ = *by_name.at("step").data<int64_t>();
  return absl::OkStatus();
}

}  // namespace training
