#include "dualpipe/simulator.h"

#include <algorithm>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "dualpipe/internal/dataflow.h"
#include "dualpipe/validator.h"

namespace dualpipe {

absl::StatusOr<Simulation> Simulate(const Schedule& schedule, const OpCosts& costs) {
  RETURN_IF_ERROR(ValidateCosts(costs));
  RETURN_IF_ERROR(ValidateSchedule(schedule));
  ASSIGN_OR_RETURN(
      std::vector<std::vector<internal::Interval>> intervals,
      internal::RunDataflow(
          schedule, [&costs](const Op& op) { return OpCost(op, costs); }, costs.p2p_latency));
  const internal::HopTable hops(schedule);
  Simulation sim;
  const int num_ranks = schedule.num_ranks;
  sim.timeline.resize(num_ranks);
  sim.ranks.resize(num_ranks);
  for (int rank = 0; rank < num_ranks; ++rank) {
    RankStats& stats = sim.ranks[rank];
    int live = 0;
    for (size_t i = 0; i < schedule.ops[rank].size(); ++i) {
      const Op& op = schedule.ops[rank][i];
      sim.timeline[rank].push_back(TimedOp{op, intervals[rank][i].start, intervals[rank][i].end});
      stats.busy += OpCost(op, costs);
      sim.makespan = std::max(sim.makespan, intervals[rank][i].end);
      for (const internal::Part& part : internal::PartsOf(hops, rank, op)) {
        if (part.kind == OpKind::kForward) ++live;
        stats.peak_activations = std::max(stats.peak_activations, live);
        if (part.kind == OpKind::kBackward || part.kind == OpKind::kBackwardInput) --live;
      }
    }
    std::set<int> paths;
    for (const Route& route : schedule.routes) {
      for (const Hop& hop : route.hops) {
        if (hop.rank == rank) paths.insert(hop.path);
      }
    }
    stats.parameter_copies = static_cast<int>(paths.size());
  }
  for (RankStats& stats : sim.ranks) {
    stats.bubble = sim.makespan - stats.busy;
    sim.total_bubble += stats.bubble;
    sim.max_peak_activations = std::max(sim.max_peak_activations, stats.peak_activations);
  }
  return sim;
}

}  // namespace dualpipe
