// From an old placement to a new one: the expert-weight copies (source GPU -> destination GPU)
// that realise the new placement, as few as possible. A replica whose expert the destination GPU
// already holds stays where it is (at most as many times as the GPU held it); only the missing
// ones are copied, each from a GPU that held the expert before, preferring the destination's own
// node and then the least-used source.
#ifndef EPLB_PLACEMENT_DIFF_H_
#define EPLB_PLACEMENT_DIFF_H_

#include <vector>

#include "absl/status/statusor.h"
#include "eplb/placement.h"

namespace eplb {

struct ExpertCopy {
  int layer = 0;
  int expert = 0;       // Logical expert whose weights move.
  int src_gpu = 0;      // A GPU that holds the expert in the old placement.
  int dst_gpu = 0;      // The GPU that needs it in the new placement.
  int dst_replica = 0;  // Physical replica index in the new placement (on dst_gpu).

  friend bool operator==(const ExpertCopy&, const ExpertCopy&) = default;
};

// The copies, ordered by layer then dst_replica. Sources name the old placement: copies read
// weights as they were before any copy is applied. Their number, per layer, is the sum over GPUs
// and experts of max(0, new count on the GPU - old count on the GPU), which no plan can beat.
// InvalidArgument when the placements differ in layers, experts, replicas, GPUs or nodes.
// Thread-safe (reads only).
absl::StatusOr<std::vector<ExpertCopy>> DiffPlacements(const Placement& from, const Placement& to);

}  // namespace eplb

#endif  // EPLB_PLACEMENT_DIFF_H_
