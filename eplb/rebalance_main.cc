// rebalance: places experts from a loads CSV and prints the placement.
//
//   bazel run //eplb:rebalance -- --loads=FILE.csv --num_replicas=16 --num_groups=4
//       --num_nodes=2 --num_gpus=8 [--policy=deepseek|refined] [--format=json|text|svg]
//
// FILE.csv has one MoE layer per line of comma-separated expert loads, at most 64 MiB and 2^24
// loads. Bad flags or input print
// one line on stderr and exit non-zero (core::ParseFlagsOrExit's codes for flag syntax, 1 for bad
// values and input).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "eplb/balancedness.h"
#include "eplb/loads_csv.h"
#include "eplb/placement_format.h"
#include "eplb/placement_svg.h"
#include "eplb/rebalance.h"

ABSL_FLAG(std::string, loads, "",
          "CSV file of expert loads: one layer per line, comma-separated; at most 64 MiB");
ABSL_FLAG(int, num_replicas, 0, "replicas (physical experts) per layer; a multiple of num_gpus");
ABSL_FLAG(int, num_groups, 0, "expert groups; must divide the number of experts");
ABSL_FLAG(int, num_nodes, 0, "server nodes; must divide num_gpus");
ABSL_FLAG(int, num_gpus, 0, "GPUs in all");
ABSL_FLAG(std::string, policy, "refined", "deepseek (DeepSeek's EPLB, exactly) or refined");
ABSL_FLAG(std::string, format, "text", "output format: json, text or svg");

namespace eplb {
namespace {

absl::Status CheckGiven(const char* name, int value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, " must be a positive integer, got ", value));
}

// --loads, relative to the directory `bazel run` was started from when run that way.
std::string LoadsPath() {
  const std::string path = absl::GetFlag(FLAGS_loads);
  const char* workspace_dir = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.starts_with('/') || workspace_dir == nullptr) return path;
  return absl::StrCat(workspace_dir, "/", path);
}

absl::StatusOr<std::string> Run() {
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "json" && format != "text" && format != "svg") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format must be json, text or svg, got '", format, "'"));
  }
  ASSIGN_OR_RETURN(const Policy policy, ParsePolicy(absl::GetFlag(FLAGS_policy)));
  if (absl::GetFlag(FLAGS_loads).empty()) {
    return absl::InvalidArgumentError("--loads is required");
  }
  RETURN_IF_ERROR(CheckGiven("num_replicas", absl::GetFlag(FLAGS_num_replicas)));
  RETURN_IF_ERROR(CheckGiven("num_groups", absl::GetFlag(FLAGS_num_groups)));
  RETURN_IF_ERROR(CheckGiven("num_nodes", absl::GetFlag(FLAGS_num_nodes)));
  RETURN_IF_ERROR(CheckGiven("num_gpus", absl::GetFlag(FLAGS_num_gpus)));
  ASSIGN_OR_RETURN(const Matrix<double> loads, ReadLoadsCsv(LoadsPath()));
  ASSIGN_OR_RETURN(
      const Placement placement,
      Rebalance(loads, absl::GetFlag(FLAGS_num_replicas), absl::GetFlag(FLAGS_num_groups),
                absl::GetFlag(FLAGS_num_nodes), absl::GetFlag(FLAGS_num_gpus), policy));
  ASSIGN_OR_RETURN(const BalancednessReport report, ComputeBalancedness(placement, loads));
  if (format == "json") return PlacementToJson(placement, report);
  if (format == "svg") {
    const int64_t boxes = int64_t{placement.num_layers()} * placement.num_replicas();
    if (boxes > kMaxSvgReplicas) {
      return absl::InvalidArgumentError(absl::StrCat(
          "an SVG of ", boxes, " replicas (layers x replicas) is too large to open (at most ",
          kMaxSvgReplicas, "): use fewer layers, or --format=json or --format=text"));
    }
    return PlacementToSvg(placement, loads, report);
  }
  return PlacementToText(placement, loads, report);
}

}  // namespace
}  // namespace eplb

int main(int argc, char** argv) {
  core::ParseFlagsOrExit(
      argc, argv,
      "Places MoE experts on GPUs from per-expert loads (DeepSeek's EPLB and our refined "
      "policy).\nUsage: rebalance --loads=FILE.csv --num_replicas=R --num_groups=G "
      "--num_nodes=N --num_gpus=P [--policy=deepseek|refined] [--format=json|text|svg]");
  const absl::StatusOr<std::string> output = eplb::Run();
  if (!output.ok()) {
    std::fprintf(stderr, "rebalance: %s\n", std::string(output.status().message()).c_str());
    return 1;
  }
  std::fwrite(output->data(), 1, output->size(), stdout);
  return 0;
}
