// Plain-text summary of a simulated schedule: one row per rank and the totals.
#ifndef DUALPIPE_RENDER_SUMMARY_H_
#define DUALPIPE_RENDER_SUMMARY_H_

#include <string>

#include "dualpipe/schedule.h"
#include "dualpipe/simulator.h"

namespace dualpipe {

// Renderers are pure functions of their arguments; thread-safe.

// Returns a table with, per rank, busy time, bubble, peak live activations and parameter copies,
// followed by makespan, total and mean bubble and the largest peak. Precondition: `simulation`
// was produced from `schedule` with `costs`.
std::string RenderSummary(const Schedule& schedule, const Simulation& simulation,
                          const OpCosts& costs);

}  // namespace dualpipe

#endif  // DUALPIPE_RENDER_SUMMARY_H_
