#include "eplb/load_tracker.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace eplb {

absl::StatusOr<std::unique_ptr<LoadTracker>> LoadTracker::Create(int num_layers, int num_experts,
                                                                 int window, double ema_decay) {
  if (num_layers <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_layers must be positive, got ", num_layers));
  }
  if (num_experts <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_experts must be positive, got ", num_experts));
  }
  if (window <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("window must be positive, got ", window));
  }
  if (!(ema_decay >= 0.0 && ema_decay < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("ema_decay must be in [0, 1), got ", ema_decay));
  }
  return std::unique_ptr<LoadTracker>(new LoadTracker(num_layers, num_experts, window, ema_decay));
}

LoadTracker::LoadTracker(int num_layers, int num_experts, int window, double ema_decay)
    : num_layers_(num_layers),
      num_experts_(num_experts),
      window_(window),
      ema_decay_(ema_decay),
      ema_(num_layers, num_experts) {}

absl::Status LoadTracker::Record(const Matrix<double>& counts) {
  if (counts.rows() != num_layers_ || counts.cols() != num_experts_) {
    return absl::InvalidArgumentError(absl::StrCat("counts is ", counts.rows(), "x", counts.cols(),
                                                   ", want ", num_layers_, "x", num_experts_));
  }
  for (int layer = 0; layer < num_layers_; ++layer) {
    for (int e = 0; e < num_experts_; ++e) {
      const double count = counts(layer, e);
      if (!(count >= 0.0) || std::isinf(count)) {
        return absl::InvalidArgumentError(absl::StrCat("counts[", layer, "][", e, "] is ", count,
                                                       ": counts must be finite and >= 0"));
      }
    }
  }
  absl::MutexLock lock(&mutex_);
  if (static_cast<int>(history_.size()) < window_) {
    history_.push_back(counts);
  } else {
    history_[steps_ % window_] = counts;
  }
  for (int layer = 0; layer < num_layers_; ++layer) {
    for (int e = 0; e < num_experts_; ++e) {
      ema_(layer, e) = steps_ == 0
                           ? counts(layer, e)
                           : ema_decay_ * ema_(layer, e) + (1.0 - ema_decay_) * counts(layer, e);
    }
  }
  ++steps_;
  return absl::OkStatus();
}

Matrix<double> LoadTracker::WindowSum() const {
  Matrix<double> sum(num_layers_, num_experts_);
  absl::MutexLock lock(&mutex_);
  for (const Matrix<double>& step : history_) {
    for (int layer = 0; layer < num_layers_; ++layer) {
      for (int e = 0; e < num_experts_; ++e) sum(layer, e) += step(layer, e);
    }
  }
  return sum;
}

Matrix<double> LoadTracker::Ema() const {
  absl::MutexLock lock(&mutex_);
  return ema_;
}

int64_t LoadTracker::steps() const {
  absl::MutexLock lock(&mutex_);
  return steps_;
}

void LoadTracker::Reset() {
  absl::MutexLock lock(&mutex_);
  history_.clear();
  ema_ = Matrix<double>(num_layers_, num_experts_);
  steps_ = 0;
}

}  // namespace eplb
