#include "dualpipe/generate.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "dualpipe/baseline_schedules.h"
#include "dualpipe/dualpipe_schedules.h"
#include "dualpipe/zbv_schedule.h"

namespace dualpipe {

absl::StatusOr<Schedule> GenerateSchedule(absl::string_view name, int num_ranks,
                                          int num_microbatches, const GenerateOptions& options) {
  if (name == "dualpipe") return GenerateDualPipe(num_ranks, num_microbatches);
  if (name == "dualpipev") return GenerateDualPipeV(num_ranks, num_microbatches);
  if (name == "1f1b") return Generate1F1B(num_ranks, num_microbatches);
  if (name == "zb1p") return GenerateZB1P(num_ranks, num_microbatches);
  if (name == "interleaved1f1b") {
    return GenerateInterleaved1F1B(num_ranks, num_microbatches, options.chunks);
  }
  if (name == "zbv") return GenerateZBV(num_ranks, num_microbatches, options.costs);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown schedule '", name,
                   "'; expected dualpipe, dualpipev, 1f1b, zb1p, interleaved1f1b or zbv"));
}

}  // namespace dualpipe
