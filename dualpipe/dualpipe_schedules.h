// DualPipe and DualPipeV schedule generators. Both reproduce the op order of DeepSeek's reference
// implementation (github.com/deepseek-ai/DualPipe, DualPipe.step and DualPipeV.step) through its
// eight phases: nF0, nF0F1, nB1W1F1 (zero bubble), the main nF0B1F1B0 loop of overlapped pairs,
// nB1F1B0, nB1B0 (zero bubble for the second half), nWB0 and nW. A backward run with zero bubble
// enabled appears as I, and the reference's FIFO weight-gradient pops as W.
#ifndef DUALPIPE_DUALPIPE_SCHEDULES_H_
#define DUALPIPE_DUALPIPE_SCHEDULES_H_

#include "absl/status/statusor.h"
#include "dualpipe/schedule.h"

namespace dualpipe {

// The generators are pure functions of their arguments and thread-safe.

// DualPipe over `num_ranks` ranks. Half the micro-batches enter at rank 0 (path 0, route through
// ranks 0..num_ranks-1) and half at the last rank (path 1, the reverse route), so rank r holds
// stage r of path 0's route and stage num_ranks-1-r of path 1's.
// Returns InvalidArgument unless num_ranks >= 2 is even and num_microbatches is even and
// >= 2 * num_ranks.
absl::StatusOr<Schedule> GenerateDualPipe(int num_ranks, int num_microbatches);

// DualPipeV ("cut-in-half" DualPipe) over `num_devices` devices holding 2 * num_devices stages in
// a V: chunk 0 (path 0) goes down ranks 0..num_devices-1, chunk 1 (path 1) comes back up. All
// micro-batches enter at rank 0. Returns InvalidArgument unless num_devices >= 1 and
// num_microbatches >= 2 * num_devices.
absl::StatusOr<Schedule> GenerateDualPipeV(int num_devices, int num_microbatches);

}  // namespace dualpipe

#endif  // DUALPIPE_DUALPIPE_SCHEDULES_H_
