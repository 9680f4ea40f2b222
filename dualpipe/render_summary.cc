#include "dualpipe/render_summary.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dualpipe {

std::string RenderSummary(const Schedule& schedule, const Simulation& simulation,
                          const OpCosts& costs) {
  std::string out = absl::StrFormat(
      "schedule %s: %d ranks, %d micro-batches; costs F=%g B=%g W=%g F&B=%g p2p=%g\n",
      schedule.name, schedule.num_ranks, schedule.TotalMicrobatches(), costs.forward,
      costs.backward, costs.weight, OpCost(Op::ForwardBackward(0, 0, 0, 0), costs),
      costs.p2p_latency);
  absl::StrAppend(&out, "rank       busy     bubble  peak_activations  parameter_copies\n");
  for (int rank = 0; rank < static_cast<int>(simulation.ranks.size()); ++rank) {
    const RankStats& stats = simulation.ranks[rank];
    absl::StrAppendFormat(&out, "%4d %10.10g %10.10g %17d %17d\n", rank, stats.busy, stats.bubble,
                          stats.peak_activations, stats.parameter_copies);
  }
  const double mean_bubble =
      simulation.ranks.empty() ? 0 : simulation.total_bubble / simulation.ranks.size();
  absl::StrAppendFormat(&out,
                        "makespan %.10g, total bubble %.10g, mean bubble per rank %.10g, "
                        "max peak activations %d\n",
                        simulation.makespan, simulation.total_bubble, mean_bubble,
                        simulation.max_peak_activations);
  return out;
}

}  // namespace dualpipe
