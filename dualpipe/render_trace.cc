#include "dualpipe/render_trace.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/trace.h"

namespace dualpipe {
namespace {

constexpr double kMicrosecondsPerUnit = 1000.0;

const char* Category(OpKind kind) {
  switch (kind) {
    case OpKind::kForward:
      return "forward";
    case OpKind::kBackward:
      return "backward";
    case OpKind::kBackwardInput:
      return "backward_input";
    case OpKind::kBackwardWeight:
      return "backward_weight";
    case OpKind::kForwardBackward:
      return "forward_backward";
  }
  return "unknown";
}

}  // namespace

std::string RenderChromeTrace(const Simulation& simulation) {
  core::TraceRecorder trace;
  for (int rank = 0; rank < static_cast<int>(simulation.timeline.size()); ++rank) {
    trace.NameProcess(rank, absl::StrCat("rank ", rank));
    for (const TimedOp& timed : simulation.timeline[rank]) {
      core::TraceEvent event;
      event.name = FormatOp(timed.op);
      event.category = Category(timed.op.kind);
      event.pid = rank;
      event.ts_us = timed.start * kMicrosecondsPerUnit;
      event.dur_us = (timed.end - timed.start) * kMicrosecondsPerUnit;
      trace.AddComplete(std::move(event));
    }
  }
  return trace.ToJson();
}

}  // namespace dualpipe
