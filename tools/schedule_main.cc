// schedule: prints a pipeline schedule (DualPipe, DualPipeV, 1F1B, ZB1P, interleaved 1F1B, ZB-V)
// as op text, an SVG picture, a simulated summary table or a Chrome trace.
//
// Sizes are bounded so that every accepted request finishes in seconds: ranks * micro-batches
// (* chunks) at most 500,000; the SVG at most 50,000 ops (a bigger picture opens in no viewer),
// drawn 1,800 pixels wide whatever the costs; the Chrome trace is streamed to stdout.
//
//   bazel run //tools:schedule -- --schedule=dualpipe --ranks=8 --microbatches=20
//   bazel run //tools:schedule -- --schedule=zb1p --ranks=4 --microbatches=8 --format=summary
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <limits>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "dualpipe/generate.h"
#include "dualpipe/render_summary.h"
#include "dualpipe/render_svg.h"
#include "dualpipe/render_trace.h"
#include "dualpipe/schedule.h"
#include "dualpipe/simulator.h"
#include "dualpipe/validator.h"

ABSL_FLAG(std::string, schedule, "dualpipe",
          "Schedule: dualpipe, dualpipev, 1f1b, zb1p, interleaved1f1b or zbv (ZB-V, whose order "
          "depends on the costs).");
ABSL_FLAG(int, ranks, 8, "Pipeline ranks (devices), 1..1024; even for dualpipe.");
ABSL_FLAG(int, microbatches, 20,
          "Micro-batches in all, 1..100000; dualpipe: even and >= 2*ranks, half from each end; "
          "dualpipev: >= 2*ranks.");
ABSL_FLAG(int, chunks, 2,
          "Model chunks per rank for interleaved1f1b, 2..64 (micro-batches must be a multiple of "
          "ranks); ignored (and not checked) by the other schedules.");
ABSL_FLAG(std::string, format, "ops",
          "Output: ops (one line per rank), svg (picture of the simulated timeline), summary "
          "(simulated per-rank table and totals) or trace (Chrome trace JSON).");
ABSL_FLAG(double, cost_f, 1, "Simulated cost of a forward chunk F.");
ABSL_FLAG(double, cost_b, 2, "Simulated cost of a full backward chunk B (= I + W).");
ABSL_FLAG(double, cost_w, 1, "Simulated cost of a backward-for-weights chunk W (<= cost_b).");
ABSL_FLAG(double, cost_fb, -1,
          "Simulated cost of an overlapped F&B pair; negative means cost_f + cost_b.");
ABSL_FLAG(double, p2p_latency, 0, "Simulated latency of a send between ranks.");

namespace {

constexpr int kMaxRanks = 1024;
constexpr int kMaxMicrobatches = 100000;
constexpr int kMaxChunks = 64;
constexpr long kMaxWork = 500000;  // About 1.5 million ops: keeps the simulation to seconds.
// Ops per unit of work at most: two stages per rank (DualPipe), each with F, I and W.
constexpr long kMaxOpsPerWork = 6;
// Simulated times stay far below infinity (Simulate checks the exact sum again).
constexpr double kMaxTotalCost = std::numeric_limits<double>::max() / 4;
constexpr long kMaxSvgOps = 50000;          // About 15 MB of SVG.
constexpr double kSvgTimelineWidth = 1800;  // Pixels from time 0 to the makespan.

absl::Status CheckRange(const char* flag, int value, int low, int high) {
  if (value < low || value > high) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be in [", low, ", ", high, "], got ", value));
  }
  return absl::OkStatus();
}

// Writes the requested rendering to `out`.
absl::Status Run(std::ostream& out) {
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "ops" && format != "svg" && format != "summary" && format != "trace") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format must be ops, svg, summary or trace, got '", format, "'"));
  }
  const int ranks = absl::GetFlag(FLAGS_ranks);
  const int microbatches = absl::GetFlag(FLAGS_microbatches);
  RETURN_IF_ERROR(CheckRange("ranks", ranks, 1, kMaxRanks));
  RETURN_IF_ERROR(CheckRange("microbatches", microbatches, 1, kMaxMicrobatches));
  const std::string name = absl::GetFlag(FLAGS_schedule);
  const bool chunked = name == "interleaved1f1b";
  const int chunks = chunked ? absl::GetFlag(FLAGS_chunks) : 2;
  if (chunked) RETURN_IF_ERROR(CheckRange("chunks", chunks, 2, kMaxChunks));
  const long work = static_cast<long>(ranks) * microbatches * (chunked ? chunks : 1);
  if (work > kMaxWork) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ranks * --microbatches (* --chunks for interleaved1f1b) must be at most ",
                     kMaxWork, ", got ", work));
  }
  dualpipe::OpCosts costs;
  costs.forward = absl::GetFlag(FLAGS_cost_f);
  costs.backward = absl::GetFlag(FLAGS_cost_b);
  costs.weight = absl::GetFlag(FLAGS_cost_w);
  costs.forward_backward = absl::GetFlag(FLAGS_cost_fb);
  costs.p2p_latency = absl::GetFlag(FLAGS_p2p_latency);
  RETURN_IF_ERROR(dualpipe::ValidateCosts(costs));
  // Every op and send one after another bounds every simulated (and planned) time.
  const double per_work = costs.forward + costs.backward + costs.weight +
                          std::max(costs.forward_backward, 0.0) + costs.p2p_latency;
  if (!(per_work * kMaxOpsPerWork * work <= kMaxTotalCost)) {
    return absl::InvalidArgumentError(
        absl::StrCat("costs too large: a step of ", work, " micro-batch stages could take ",
                     per_work * kMaxOpsPerWork * work, " time units, beyond ", kMaxTotalCost,
                     "; scale the costs down"));
  }

  dualpipe::GenerateOptions options;
  options.chunks = chunks;
  options.costs = costs;
  ASSIGN_OR_RETURN(dualpipe::Schedule schedule,
                   dualpipe::GenerateSchedule(name, ranks, microbatches, options));
  RETURN_IF_ERROR(dualpipe::ValidateSchedule(schedule));
  if (format == "ops") {
    out << dualpipe::FormatSchedule(schedule);
    return absl::OkStatus();
  }
  long num_ops = 0;
  for (const auto& rank_ops : schedule.ops) num_ops += static_cast<long>(rank_ops.size());
  if (format == "svg" && num_ops > kMaxSvgOps) {
    return absl::InvalidArgumentError(
        absl::StrCat("an SVG of ", num_ops, " ops is too large to open (at most ", kMaxSvgOps,
                     "): use fewer ranks or micro-batches, or --format=summary or --format=trace"));
  }
  ASSIGN_OR_RETURN(dualpipe::Simulation simulation, dualpipe::Simulate(schedule, costs));
  if (format == "summary") {
    out << dualpipe::RenderSummary(schedule, simulation, costs);
  } else if (format == "trace") {
    dualpipe::WriteChromeTrace(simulation, out);
  } else {
    const std::string title = absl::StrCat(schedule.name, ": ", ranks, " ranks, ", microbatches,
                                           " micro-batches, makespan ", simulation.makespan);
    // A fixed width, whatever the unit of the costs.
    const double pixels_per_unit =
        simulation.makespan > 0 ? kSvgTimelineWidth / simulation.makespan : 1;
    out << dualpipe::RenderSvg(simulation, costs, title, pixels_per_unit);
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  core::ParseFlagsOrExit(
      argc, argv,
      "Prints a pipeline schedule: its op order, an SVG of its simulated timeline, the simulated\n"
      "per-rank bubbles and memory, or a Chrome trace.\n"
      "Usage: schedule --schedule=dualpipe|dualpipev|1f1b|zb1p|interleaved1f1b|zbv --ranks=N\n"
      "         --microbatches=M [--chunks=V] [--format=ops|svg|summary|trace]\n"
      "         [--cost_f= --cost_b= --cost_w= --cost_fb= --p2p_latency=]");
  std::ios::sync_with_stdio(false);
  const absl::Status status = Run(std::cout);
  std::cout.flush();
  if (!status.ok()) {
    std::fprintf(stderr, "schedule: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  if (!std::cout) {
    std::fprintf(stderr, "schedule: cannot write the output\n");
    return 1;
  }
  return 0;
}
