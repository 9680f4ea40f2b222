#include "dualpipe/render_trace.h"

#include <sstream>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

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

// `text` as a JSON string literal. Op names and categories are plain ASCII; quotes, backslashes
// and control characters are escaped all the same.
std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace

void WriteChromeTrace(const Simulation& simulation, std::ostream& out) {
  const int num_ranks = static_cast<int>(simulation.timeline.size());
  out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[";
  bool first = true;
  const auto separator = [&]() -> const char* {
    const char* s = first ? "\n" : ",\n";
    first = false;
    return s;
  };
  for (int rank = 0; rank < num_ranks; ++rank) {
    out << separator()
        << absl::StrFormat(
               "{\"args\":{\"name\":\"rank "
               "%d\"},\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d}",
               rank, rank);
    out << separator()
        << absl::StrFormat(
               "{\"args\":{\"sort_index\":%d},\"name\":\"process_sort_index\",\"ph\":\"M\","
               "\"pid\":%d}",
               rank, rank);
  }
  for (int rank = 0; rank < num_ranks; ++rank) {
    for (const TimedOp& timed : simulation.timeline[rank]) {
      out << separator()
          << absl::StrFormat(
                 "{\"cat\":\"%s\",\"dur\":%.17g,\"name\":%s,\"ph\":\"X\",\"pid\":%d,\"tid\":0,"
                 "\"ts\":%.17g}",
                 Category(timed.op.kind), (timed.end - timed.start) * kMicrosecondsPerUnit,
                 JsonString(FormatOp(timed.op)), rank, timed.start * kMicrosecondsPerUnit);
    }
  }
  out << "\n]}\n";
}

std::string RenderChromeTrace(const Simulation& simulation) {
  std::ostringstream out;
  WriteChromeTrace(simulation, out);
  return out.str();
}

}  // namespace dualpipe
