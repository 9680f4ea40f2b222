// Chrome trace (chrome://tracing, Perfetto) JSON of a simulated schedule.
#ifndef DUALPIPE_RENDER_TRACE_H_
#define DUALPIPE_RENDER_TRACE_H_

#include <string>

#include "dualpipe/simulator.h"

namespace dualpipe {

// Returns a JSON object {"traceEvents": [...]} with one complete ("ph":"X") event per op, named
// like the op's text form, on thread `rank` of process 0, and a thread_name event per rank.
// One simulated cost unit is shown as one millisecond.
std::string RenderChromeTrace(const Simulation& simulation);

}  // namespace dualpipe

#endif  // DUALPIPE_RENDER_TRACE_H_
