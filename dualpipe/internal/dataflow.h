// Dataflow execution of a schedule, shared by the validator (deadlock check) and the simulator.
// Each rank runs its ops in order; an op starts when its rank is free and every value it consumes
// (the activation from the previous stage, the input gradient from the next stage) has arrived.
// Sends are asynchronous, so the only way to get stuck is a cycle of waits.
#ifndef DUALPIPE_INTERNAL_DATAFLOW_H_
#define DUALPIPE_INTERNAL_DATAFLOW_H_

#include <functional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "dualpipe/schedule.h"

namespace dualpipe::internal {

// One stage of one micro-batch that a (part of an) op works on.
struct Part {
  OpKind kind = OpKind::kForward;  // kForward, kBackward, kBackwardInput or kBackwardWeight.
  int route = 0;
  int stage = 0;
  int microbatch = 0;
};

// Route and stage of every hop of a schedule, indexed by rank and path: a constant-time StageOf.
class HopTable {
 public:
  // Precondition: every hop names a rank in [0, num_ranks) and a path >= 0.
  explicit HopTable(const Schedule& schedule);

  // {route, stage} of hop (rank, path), or {-1, -1} if no route visits it.
  std::pair<int, int> Find(int rank, int path) const;

 private:
  int num_ranks_;
  int num_paths_;
  std::vector<std::pair<int, int>> table_;  // [rank * num_paths_ + path]
};

// The parts of `op` run on `rank`: one, or two (forward first) for an overlapped pair.
// Precondition: every (rank, path) of `op` is a hop of some route (the validator's structure
// checks pass).
std::vector<Part> PartsOf(const HopTable& hops, int rank, const Op& op);

// Start and end time of one op.
struct Interval {
  double start = 0;
  double end = 0;
};

// Runs the schedule as a dataflow. `duration(op)` gives each op's run time; a value crossing ranks
// arrives `p2p_latency` after the op that produced it ends. Returns [rank][op index] intervals, or
// FailedPrecondition describing where each unfinished rank waits if the ranks deadlock.
// Preconditions: the schedule's structure and op labels are valid and every stage of every
// micro-batch has its F and its B or I somewhere (the validator's counting checks).
absl::StatusOr<std::vector<std::vector<Interval>>> RunDataflow(
    const Schedule& schedule, const std::function<double(const Op&)>& duration, double p2p_latency);

}  // namespace dualpipe::internal

#endif  // DUALPIPE_INTERNAL_DATAFLOW_H_
