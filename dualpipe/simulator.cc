#include "dualpipe/simulator.h"

#include <algorithm>
#include <limits>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "dualpipe/internal/dataflow.h"
#include "dualpipe/validator.h"

namespace dualpipe {
namespace {

// Simulated times must stay far below infinity, which the dataflow also uses for "not ready yet".
constexpr double kMaxSimulatedTime = std::numeric_limits<double>::max() / 4;

// InvalidArgument when the ops of `schedule` and their sends, run one after another, could take
// longer than kMaxSimulatedTime (or overflow to infinity): no simulated time can exceed that sum.
absl::Status CheckTimesFit(const Schedule& schedule, const OpCosts& costs) {
  double total = 0;
  int64_t num_ops = 0;
  for (const std::vector<Op>& ops : schedule.ops) {
    for (const Op& op : ops) total += OpCost(op, costs) + costs.p2p_latency;
    num_ops += static_cast<int64_t>(ops.size());
  }
  if (total <= kMaxSimulatedTime) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("costs too large: ", num_ops, " ops and their sends could take ", total,
                   " time units in all, beyond the simulator's limit of ", kMaxSimulatedTime,
                   "; scale the costs down"));
}

}  // namespace

absl::StatusOr<Simulation> Simulate(const Schedule& schedule, const OpCosts& costs) {
  RETURN_IF_ERROR(ValidateCosts(costs));
  RETURN_IF_ERROR(ValidateSchedule(schedule));
  RETURN_IF_ERROR(CheckTimesFit(schedule, costs));
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
