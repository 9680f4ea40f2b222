#include "dualpipe/render_trace.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

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
  std::string out = "{\"traceEvents\": [\n";
  bool first = true;
  auto separator = [&first]() {
    const char* s = first ? "" : ",\n";
    first = false;
    return s;
  };
  for (int rank = 0; rank < static_cast<int>(simulation.timeline.size()); ++rank) {
    absl::StrAppendFormat(&out,
                          "%s{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": %d, "
                          "\"args\": {\"name\": \"rank %d\"}}",
                          separator(), rank, rank);
    for (const TimedOp& timed : simulation.timeline[rank]) {
      absl::StrAppendFormat(
          &out,
          "%s{\"name\": \"%s\", \"cat\": \"%s\", \"ph\": \"X\", \"pid\": 0, \"tid\": %d, "
          "\"ts\": %.3f, \"dur\": %.3f}",
          separator(), FormatOp(timed.op), Category(timed.op.kind), rank,
          timed.start * kMicrosecondsPerUnit, (timed.end - timed.start) * kMicrosecondsPerUnit);
    }
  }
  out += "\n]}\n";
  return out;
}

}  // namespace dualpipe
