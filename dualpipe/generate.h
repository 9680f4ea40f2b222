// Schedule generation by name, for tools and tests that pick the schedule at run time.
#ifndef DUALPIPE_GENERATE_H_
#define DUALPIPE_GENERATE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dualpipe/costs.h"
#include "dualpipe/schedule.h"

namespace dualpipe {

// GenerateSchedule is a pure function of its arguments and thread-safe.

// Settings only some schedules read.
struct GenerateOptions {
  int chunks = 2;  // Model chunks per rank, for interleaved1f1b.
  OpCosts costs;   // The costs zbv plans with.
};

// Builds schedule `name` ("dualpipe", "dualpipev", "1f1b", "zb1p", "interleaved1f1b" or "zbv")
// over `num_ranks` ranks with `num_microbatches` micro-batches in all (for dualpipe, half enter
// from each end). Returns InvalidArgument for an unknown name or a shape the schedule does not
// support.
absl::StatusOr<Schedule> GenerateSchedule(absl::string_view name, int num_ranks,
                                          int num_microbatches,
                                          const GenerateOptions& options = {});

}  // namespace dualpipe

#endif  // DUALPIPE_GENERATE_H_
