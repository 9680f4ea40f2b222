// Chrome trace (chrome://tracing, Perfetto) JSON of a simulated schedule, in the format of core's
// TraceRecorder (metadata naming each rank's track, then one complete event per op), so that
// simulated and measured traces open the same way. Written as a stream: a trace of millions of
// ops needs no more memory than the simulation itself.
#ifndef DUALPIPE_RENDER_TRACE_H_
#define DUALPIPE_RENDER_TRACE_H_

#include <ostream>
#include <string>

#include "dualpipe/simulator.h"

namespace dualpipe {

// Renderers are pure functions of their arguments; thread-safe.

// Writes {"displayTimeUnit": "ms", "traceEvents": [...]} to `out`: per rank a process_name
// ("rank R") and a process_sort_index metadata event, then one complete event per op, named like
// the op's text form, category forward / backward / backward_input / backward_weight /
// forward_backward, on pid = rank, tid 0. One simulated cost unit is shown as one millisecond.
// The caller checks `out` for write errors.
void WriteChromeTrace(const Simulation& simulation, std::ostream& out);

// WriteChromeTrace into a string.
std::string RenderChromeTrace(const Simulation& simulation);

}  // namespace dualpipe

#endif  // DUALPIPE_RENDER_TRACE_H_
