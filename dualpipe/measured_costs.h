// Per-op costs measured from real steps, for the simulator: the bridge between the executor's
// timelines and Simulate's predictions (makespan, bubbles) of the same schedule.
#ifndef DUALPIPE_MEASURED_COSTS_H_
#define DUALPIPE_MEASURED_COSTS_H_

#include <array>
#include <cstdint>
#include <vector>

#include "dualpipe/costs.h"
#include "dualpipe/executor.h"

namespace dualpipe {

// Compute time (end - start - wait: the op itself, without waiting for its receives) summed per
// op kind over any number of ranks' timelines.
struct OpTimeTotals {
  std::array<double, 5> seconds{};  // by OpKind
  std::array<int64_t, 5> count{};

  void Add(const std::vector<OpTiming>& timeline);
  void Add(const OpTimeTotals& other);
  // Mean costs in seconds: F, B (or I + W where the schedule splits it), W, and F+B where
  // present (else "F + B"). A kind never measured is derived from the others where it can be
  // (I = B - W), else 0.
  OpCosts Costs() const;
};

}  // namespace dualpipe

#endif  // DUALPIPE_MEASURED_COSTS_H_
