// Chrome trace (chrome://tracing, Perfetto) JSON of a simulated schedule, through core's
// TraceRecorder so that simulated and measured traces share one format.
#ifndef DUALPIPE_RENDER_TRACE_H_
#define DUALPIPE_RENDER_TRACE_H_

#include <string>

#include "dualpipe/simulator.h"

namespace dualpipe {

// Renderers are pure functions of their arguments; thread-safe.

// Returns {"traceEvents": [...]} with one complete event per op, named like the op's text form,
// category forward / backward / backward_input / backward_weight / forward_backward, on
// pid = rank (named "rank R"), tid 0. One simulated cost unit is shown as one millisecond.
std::string RenderChromeTrace(const Simulation& simulation);

}  // namespace dualpipe

#endif  // DUALPIPE_RENDER_TRACE_H_
