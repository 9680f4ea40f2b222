// Which pipeline stages a rank hosts under a schedule, and which micro-batches each stage sees.
//
// Stage s of a route runs the layers of model stage s on every route: DualPipe's two routes pass
// the same model stages in opposite directions, so rank r hosts model stage r (path 0, the
// micro-batches that enter at rank 0) and model stage PP-1-r (path 1, those that enter at the
// last rank); DualPipeV's rank r hosts stages r and 2*PP-1-r of its one V-shaped route;
// single-direction schedules host one stage per rank (interleaved 1F1B: one per chunk).
//
// Micro-batches are numbered globally in route order: route 0's micro-batches first, then route
// 1's. With DualPipe's halves this is DeepSeek's `DualPipe.step` split: the first rank feeds the
// first half of the inputs and the last rank the second half.
#ifndef DUALPIPE_PLACEMENT_H_
#define DUALPIPE_PLACEMENT_H_

#include <vector>

#include "dualpipe/schedule.h"

namespace dualpipe {

// One stage that one rank hosts.
struct HostedStage {
  int path = 0;              // the path label on this rank; the executor's stage index
  int route = 0;             // the route the path belongs to
  int stage = 0;             // stage index within the route (= model stage)
  int num_stages = 0;        // stages in the route
  int first_microbatch = 0;  // global index of the route's micro-batch 0
  int num_microbatches = 0;  // micro-batches taking the route

  bool first() const { return stage == 0; }
  bool last() const { return stage == num_stages - 1; }
  // Global index of the route's micro-batch `microbatch`.
  int Global(int microbatch) const { return first_microbatch + microbatch; }
};

// The stages `rank` hosts, ordered by path. Precondition: `schedule` passes ValidateSchedule's
// structure checks and 0 <= rank < schedule.num_ranks. Thread-safe.
std::vector<HostedStage> HostedStages(const Schedule& schedule, int rank);

// Global index of route `route`'s micro-batch 0 (the micro-batches of the routes before it).
int FirstMicrobatch(const Schedule& schedule, int route);

}  // namespace dualpipe

#endif  // DUALPIPE_PLACEMENT_H_
