// Per-op costs of a pipeline step, shared by the simulator and by generators that plan with costs.
#ifndef DUALPIPE_COSTS_H_
#define DUALPIPE_COSTS_H_

#include "absl/status/status.h"
#include "dualpipe/schedule.h"

namespace dualpipe {

// Plain value type and pure functions; thread-safe.

// Costs in any time unit. A full backward B costs `backward`; it splits into an I costing
// backward - weight and a W costing `weight`. An overlapped pair F+B costs `forward_backward`, or
// forward + backward when that is negative. A value sent to another rank arrives `p2p_latency`
// after its op ends; values staying on a rank are free.
struct OpCosts {
  double forward = 1;
  double backward = 2;
  double weight = 1;
  double forward_backward = -1;
  double p2p_latency = 0;
};

// Returns InvalidArgument unless every cost is finite and >= 0 (forward_backward may be negative
// to mean "forward + backward") and weight <= backward.
absl::Status ValidateCosts(const OpCosts& costs);

// Run time of `op` under `costs`.
double OpCost(const Op& op, const OpCosts& costs);

}  // namespace dualpipe

#endif  // DUALPIPE_COSTS_H_
