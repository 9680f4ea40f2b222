// Single-direction baseline schedules: 1F1B (PipeDream-flush, as in Megatron-LM) and ZB1P (ZB-H1
// from "Zero Bubble Pipeline Parallelism", Qi et al. 2023, which splits backward into I and a
// deferred W) over one route through ranks 0..num_ranks-1 (path 0), and Megatron-LM's interleaved
// 1F1B, whose route passes the ranks once per model chunk (path = chunk).
#ifndef DUALPIPE_BASELINE_SCHEDULES_H_
#define DUALPIPE_BASELINE_SCHEDULES_H_

#include "absl/status/statusor.h"
#include "dualpipe/schedule.h"

namespace dualpipe {

// The generators are pure functions of their arguments and thread-safe.

// 1F1B: rank r runs min(num_ranks-1-r, M) warm-up forwards, then alternates F and B, then drains
// the remaining B. Returns InvalidArgument unless num_ranks >= 1 and num_microbatches >= 1.
absl::StatusOr<Schedule> Generate1F1B(int num_ranks, int num_microbatches);

// ZB1P (ZB-H1): the 1F1B order with each B split into I and W. Rank r runs its W's right after
// their I, except that it holds back up to r of them, which fill the idle time of the cool-down
// (rank r idles r backward steps more there than rank 0); the held-back W's run after the last I.
// Peak activations stay those of 1F1B. Returns InvalidArgument unless num_ranks >= 1 and
// num_microbatches >= 1.
absl::StatusOr<Schedule> GenerateZB1P(int num_ranks, int num_microbatches);

// Interleaved 1F1B (Megatron-LM's virtual pipeline): each rank holds `num_chunks` model chunks;
// stage c * num_ranks + r is chunk c on rank r. Forwards go in groups of num_ranks micro-batches
// per chunk, chunk 0 first; backwards likewise from the last chunk; rank r warms up with
// (num_ranks-1-r)*2 + (num_chunks-1)*num_ranks forwards (all of them when micro-batches ==
// ranks). Returns InvalidArgument unless num_ranks >= 1, num_chunks >= 2 and num_microbatches is a
// positive multiple of num_ranks.
absl::StatusOr<Schedule> GenerateInterleaved1F1B(int num_ranks, int num_microbatches,
                                                 int num_chunks);

}  // namespace dualpipe

#endif  // DUALPIPE_BASELINE_SCHEDULES_H_
