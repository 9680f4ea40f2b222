// Schedule IR for pipeline parallelism: per rank, the ordered compute ops of one training step.
//
// A micro-batch follows a route: the ordered list of hops (rank, path) where its pipeline stages
// 0, 1, ..., S-1 run. The path labels a hop on its rank: the direction in DualPipe (0 =
// micro-batches that enter at rank 0, 1 = those that enter at the last rank), the chunk in
// DualPipeV (0 = the way down, 1 = the way back), 0 in single-direction schedules. Each path label
// belongs to exactly one route, so an op naming (path, micro-batch) on a rank identifies one stage
// of one micro-batch.
//
// Text form, one line per rank: `rank R: OP OP ...` where OP is F<p>.<m>, B<p>.<m>, I<p>.<m>,
// W<p>.<m> or an overlapped pair F<p>.<m>+B<p>.<m>, m counting from 0 within the path's route.
#ifndef DUALPIPE_SCHEDULE_H_
#define DUALPIPE_SCHEDULE_H_

#include <string>
#include <vector>

namespace dualpipe {

// Plain data and pure functions: safe to read from many threads; writers need their own locking.

enum class OpKind {
  kForward,          // F: forward of one stage for one micro-batch.
  kBackward,         // B: full backward (inputs and weights).
  kBackwardInput,    // I: backward for inputs only; its weight part is deferred to a W.
  kBackwardWeight,   // W: the weight gradient of the oldest I on this rank not yet followed by W.
  kForwardBackward,  // F+B: a forward and a full backward of another micro-batch, overlapped.
};

// One compute op. For kForwardBackward, (path, microbatch) names the forward part and
// (backward_path, backward_microbatch) the backward part; otherwise those two are -1.
struct Op {
  OpKind kind = OpKind::kForward;
  int path = 0;
  int microbatch = 0;
  int backward_path = -1;
  int backward_microbatch = -1;

  static Op Forward(int path, int microbatch);
  static Op Backward(int path, int microbatch);
  static Op BackwardInput(int path, int microbatch);
  static Op BackwardWeight(int path, int microbatch);
  static Op ForwardBackward(int forward_path, int forward_microbatch, int backward_path,
                            int backward_microbatch);

  friend bool operator==(const Op&, const Op&) = default;
};

// Where one stage of a route runs.
struct Hop {
  int rank = 0;
  int path = 0;
  friend bool operator==(const Hop&, const Hop&) = default;
};

// The stages that every micro-batch of one route passes, in order, and how many micro-batches
// take it.
struct Route {
  std::vector<Hop> hops;
  int num_microbatches = 0;
};

// A whole step: the routes and each rank's op order. Plain data; generators build it, the
// validator checks it, the simulator and renderers read it.
struct Schedule {
  std::string name;  // e.g. "dualpipe"; informational.
  int num_ranks = 0;
  std::vector<Route> routes;
  std::vector<std::vector<Op>> ops;  // [rank] -> ops in execution order.

  // Number of distinct path labels (max path + 1 over all routes).
  int NumPaths() const;
  // Index of the route that path `path` belongs to, or -1 if none.
  int RouteOfPath(int path) const;
  // Stage index of hop (rank, path) within its route, or -1 if the route does not visit it.
  int StageOf(int rank, int path) const;
  // Total number of micro-batches over all routes.
  int TotalMicrobatches() const;
};

// The V-shaped route of DualPipeV and ZB-V over `num_ranks` ranks: path 0 (chunk 0) down ranks
// 0..num_ranks-1, then path 1 (chunk 1) back up to rank 0; 2 * num_ranks stages.
Route VRoute(int num_ranks, int num_microbatches);

// "F0.3", "B1.0", "I0.2", "W0.2" or "F0.7+B1.3".
std::string FormatOp(const Op& op);

// One line per rank, `rank R: OP OP ...`, each ending in '\n'.
std::string FormatSchedule(const Schedule& schedule);

}  // namespace dualpipe

#endif  // DUALPIPE_SCHEDULE_H_
