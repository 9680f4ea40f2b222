#include "training/optimizer.h"

#include <cmath>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"

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

AdamW::AdamW(const OptimizerConfig& config, std::vector<model::Param<float>*> params)
    : config_(config), params_(std::move(params)) {
  for (const model::Param<float>* p : params_) {
    const bool trainable = p->trainable();
    exp_avg_.push_back(trainable ? model::Matrix<float>::Zero(p->value.rows(), p->value.cols())
                                 : model::Matrix<float>());
    exp_avg_sq_.push_back(exp_avg_.back());
  }
}

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
  for (size_t i = 0; i < params_.size(); ++i) {
    model::Param<float>& p = *params_[i];
    if (!p.trainable()) continue;
    float* value = p.value.data();
    float* grad = p.grad.data();
    float* m = exp_avg_[i].data();
    float* v = exp_avg_sq_[i].data();
    const bool decays = p.kind == model::ParamKind::kMatrix;
    for (int64_t j = 0; j < p.value.size(); ++j) {
      const float g = grad[j] * grad_scale;
      if (decays) value[j] *= decay;
      m[j] = beta1 * m[j] + (1 - beta1) * g;
      v[j] = beta2 * v[j] + (1 - beta2) * g * g;
      value[j] -= step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_correction2 + eps);
      grad[j] = 0;
    }
  }
}

std::vector<std::pair<std::string, core::TensorView>> AdamW::State() {
  std::vector<std::pair<std::string, core::TensorView>> state;
  for (size_t i = 0; i < params_.size(); ++i) {
    const model::Param<float>& p = *params_[i];
    if (!p.trainable()) continue;
    state.emplace_back(p.name + ".exp_avg", core::TensorView(exp_avg_[i].data(), core::DType::kF32,
                                                             core::Shape(p.shape())));
    state.emplace_back(
        p.name + ".exp_avg_sq",
        core::TensorView(exp_avg_sq_[i].data(), core::DType::kF32, core::Shape(p.shape())));
  }
  state.emplace_back("step", core::TensorView(&steps_, core::DType::kI64, core::Shape({1})));
  return state;
}

absl::Status AdamW::LoadState(
    const std::vector<std::pair<std::string, core::TensorView>>& tensors) {
  std::map<std::string, core::TensorView> by_name(tensors.begin(), tensors.end());
  // Check everything first, then copy.
  for (const auto& [name, view] : State()) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat("optimizer state: no tensor '", name, "'"));
    }
    if (it->second.shape() != view.shape() || it->second.dtype() != view.dtype()) {
      return absl::InvalidArgumentError(absl::StrCat("optimizer state: tensor '", name,
                                                     "' has shape ", it->second.shape().ToString(),
                                                     ", expected ", view.shape().ToString()));
    }
  }
  for (const auto& [name, view] : State()) {
    std::memcpy(view.raw_data(), by_name.at(name).raw_data(), view.num_bytes());
  }
  return absl::OkStatus();
}

}  // namespace training
