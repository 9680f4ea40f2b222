// Timeline simulator: runs a schedule with per-op costs and reports each rank's timeline, the
// makespan, bubbles, peak live activations and parameter copies.
#ifndef DUALPIPE_SIMULATOR_H_
#define DUALPIPE_SIMULATOR_H_

#include <vector>

#include "absl/status/statusor.h"
#include "dualpipe/costs.h"
#include "dualpipe/schedule.h"

namespace dualpipe {

struct TimedOp {
  Op op;
  double start = 0;
  double end = 0;
};

struct RankStats {
  double busy = 0;           // Sum of the rank's op costs.
  double bubble = 0;         // makespan - busy: the rank's idle time within the step.
  int peak_activations = 0;  // Most (stage, micro-batch) activations held at once; one is taken
                             // at its F and released at its B or I (W's saved inputs not counted).
  int parameter_copies = 0;  // Stages whose weights the rank holds.
};

struct Simulation {
  std::vector<std::vector<TimedOp>> timeline;  // [rank] -> ops in order with their times.
  std::vector<RankStats> ranks;                // [rank].
  double makespan = 0;                         // End of the last op; the step starts at 0.
  double total_bubble = 0;                     // Sum of the ranks' bubbles.
  int max_peak_activations = 0;                // Max over ranks.
};

// Simulates `schedule` (validated first: returns the validator's error if it is illegal) under
// `costs` (InvalidArgument if ValidateCosts fails, or if the sum of all op costs and sends exceeds
// DBL_MAX / 4: times that large would overflow). Each rank runs its ops in order as soon as the
// values they consume have arrived. Thread-safe.
absl::StatusOr<Simulation> Simulate(const Schedule& schedule, const OpCosts& costs);

}  // namespace dualpipe

#endif  // DUALPIPE_SIMULATOR_H_
