// Per-layer, per-expert token counts gathered while training or serving, summarised two ways for
// the rebalancer: the sum over a sliding window of the last `window` steps, and an exponential
// moving average over all steps.
//
//   ASSIGN_OR_RETURN(auto tracker, eplb::LoadTracker::Create(layers, experts, 100, 0.9));
//   RETURN_IF_ERROR(tracker->Record(step_counts));      // [layers, experts], once per step
//   Matrix<double> loads = tracker->WindowSum();        // feed to eplb::Rebalance
#ifndef EPLB_LOAD_TRACKER_H_
#define EPLB_LOAD_TRACKER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "eplb/matrix.h"

namespace eplb {

// Thread-safe: Record and the readers may be called concurrently from any threads.
class LoadTracker {
 public:
  // A tracker of [num_layers, num_experts] counts keeping the last `window` steps, with EMA
  // weight `ema_decay` on the past (ema = decay * ema + (1 - decay) * counts; the first step sets
  // ema = counts). InvalidArgument unless num_layers, num_experts and window are positive and
  // 0 <= ema_decay < 1.
  static absl::StatusOr<std::unique_ptr<LoadTracker>> Create(int num_layers, int num_experts,
                                                             int window, double ema_decay);

  // Adds one step's counts [num_layers, num_experts]. InvalidArgument (and nothing recorded) when
  // the shape differs or a count is negative or not finite.
  absl::Status Record(const Matrix<double>& counts) ABSL_LOCKS_EXCLUDED(mutex_);

  // Sum of the counts of the last min(steps(), window) steps; zeros before the first step.
  // O(window * layers * experts): recomputed from the kept steps, so no rounding drift.
  Matrix<double> WindowSum() const ABSL_LOCKS_EXCLUDED(mutex_);

  // The exponential moving average; zeros before the first step.
  Matrix<double> Ema() const ABSL_LOCKS_EXCLUDED(mutex_);

  // Steps recorded since creation or the last Reset.
  int64_t steps() const ABSL_LOCKS_EXCLUDED(mutex_);

  // Forgets every step (for example after the placement changed).
  void Reset() ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  LoadTracker(int num_layers, int num_experts, int window, double ema_decay);

  const int num_layers_;
  const int num_experts_;
  const int window_;
  const double ema_decay_;

  mutable absl::Mutex mutex_;
  // Ring buffer of the last window_ steps; step s lives in history_[s % window_].
  std::vector<Matrix<double>> history_ ABSL_GUARDED_BY(mutex_);
  Matrix<double> ema_ ABSL_GUARDED_BY(mutex_);
  int64_t steps_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace eplb

#endif  // EPLB_LOAD_TRACKER_H_
