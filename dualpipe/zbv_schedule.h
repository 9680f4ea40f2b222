// ZB-V schedule generator: the V-shaped zero-bubble schedule of "Pipeline Parallelism with
// Controllable Memory" / "Zero Bubble Pipeline Parallelism" (Qi et al.), as built by the greedy
// heuristic of sail-sg/zero-bubble-pipeline-parallelism (zbv.py, PipelineGraph.create_schedule).
// Unlike the other generators its op order depends on the op costs: it places each F, I and W
// where it leaves the least idle time, under a memory cap.
#ifndef DUALPIPE_ZBV_SCHEDULE_H_
#define DUALPIPE_ZBV_SCHEDULE_H_

#include "absl/status/statusor.h"
#include "dualpipe/costs.h"
#include "dualpipe/schedule.h"

namespace dualpipe {

// A pure function of its arguments; thread-safe.

// ZB-V over `num_devices` devices holding 2 * num_devices stages in a V, like DualPipeV (path 0 =
// chunk 0 down ranks 0..num_devices-1, path 1 = chunk 1 back up); all micro-batches enter at rank
// 0; every backward is split into I and W. Memory model: an F takes 2 units, its I frees 1, its W
// the other; a rank holds at most 4 * num_devices units (the reference's default: the
// activations of 2 * num_devices forwards, 1F1B's peak over as many stages). Plans with
// costs.forward, the I cost costs.backward - costs.weight, costs.weight and costs.p2p_latency
// (forward_backward is unused: ZB-V overlaps nothing). Tries the reference's four fill policies and
// keeps the one with the least worst-rank bubble. Returns InvalidArgument unless num_devices >= 1,
// num_microbatches >= 1 and ValidateCosts(costs) passes.
absl::StatusOr<Schedule> GenerateZBV(int num_devices, int num_microbatches, const OpCosts& costs);

}  // namespace dualpipe

#endif  // DUALPIPE_ZBV_SCHEDULE_H_
