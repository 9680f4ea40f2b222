#include "dualpipe/dualpipe_schedules.h"

#include <array>
#include <deque>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dualpipe {
namespace {

// One rank's view of the reference step(): its position in the (half) pipeline and how its local
// phases 0 and 1 map to paths. In DualPipe the ranks of the second half swap the phases.
struct RankShape {
  int half_rank = 0;       // Distance from the nearer end (DualPipe) or the rank (DualPipeV).
  int num_half_ranks = 0;  // Half the ranks (DualPipe) or all devices (DualPipeV).
  int main_steps = 0;      // Iterations of the main nF0B1F1B0 loop.
  bool is_middle = false;  // Runs the first main step unoverlapped.
  std::array<int, 2> path_of_phase = {0, 1};
};

// Emits the reference's op order for one rank, tracking per-path micro-batch counters and the
// FIFO of deferred weight gradients exactly as DualPipe.step() does.
class RankEmitter {
 public:
  explicit RankEmitter(const RankShape& shape) : shape_(shape) {}

  std::vector<Op> Emit() && {
    const int h = shape_.half_rank;
    const int n = shape_.num_half_ranks;
    for (int i = 0; i < (n - h - 1) * 2; ++i) Forward(0);  // Step 1: nF0.
    for (int i = 0; i < h + 1; ++i) {                      // Step 2: nF0F1.
      Forward(0);
      Forward(1);
    }
    for (int i = 0; i < n - h - 1; ++i) {  // Step 3: nB1W1F1 with zero bubble.
      Backward(1, /*zero_bubble=*/true);
      Weight();
      Forward(1);
    }
    for (int i = 0; i < shape_.main_steps; ++i) {  // Step 4: nF0B1F1B0.
      if (i == 0 && shape_.is_middle) {
        Forward(0);  // The middle ranks do not overlap their first pair.
        Backward(1, /*zero_bubble=*/false);
      } else {
        ForwardBackward(0, 1);
      }
      ForwardBackward(1, 0);
    }
    for (int i = 0; i < n - h - 1; ++i) {  // Step 5: nB1F1B0.
      Backward(1, /*zero_bubble=*/false);
      ForwardBackward(1, 0);
    }
    const int step_6 = h + 1;  // Step 6: nB1B0, the second half with zero bubble.
    bool zero_bubble = false;
    for (int i = 0; i < step_6; ++i) {
      if (i == step_6 / 2 && h % 2 == 1) zero_bubble = true;
      Backward(1, zero_bubble);
      if (i == step_6 / 2 && h % 2 == 0) zero_bubble = true;
      Backward(0, zero_bubble);
    }
    for (int i = 0; i < n - h - 1; ++i) {  // Step 7: nWB0 with zero bubble.
      Weight();
      Backward(0, /*zero_bubble=*/true);
    }
    for (int i = 0; i < h + 1; ++i) Weight();  // Step 8: nW.
    return std::move(ops_);
  }

 private:
  int Path(int phase) const { return shape_.path_of_phase[phase]; }

  void Forward(int phase) {
    const int path = Path(phase);
    ops_.push_back(Op::Forward(path, next_forward_[path]++));
  }

  void Backward(int phase, bool zero_bubble) {
    const int path = Path(phase);
    const int microbatch = next_backward_[path]++;
    if (zero_bubble) {
      ops_.push_back(Op::BackwardInput(path, microbatch));
      deferred_weights_.emplace_back(path, microbatch);
    } else {
      ops_.push_back(Op::Backward(path, microbatch));
    }
  }

  void ForwardBackward(int forward_phase, int backward_phase) {
    const int forward_path = Path(forward_phase);
    const int backward_path = Path(backward_phase);
    ops_.push_back(Op::ForwardBackward(forward_path, next_forward_[forward_path]++, backward_path,
                                       next_backward_[backward_path]++));
  }

  void Weight() {
    const auto [path, microbatch] = deferred_weights_.front();
    deferred_weights_.pop_front();
    ops_.push_back(Op::BackwardWeight(path, microbatch));
  }

  RankShape shape_;
  std::array<int, 2> next_forward_ = {0, 0};
  std::array<int, 2> next_backward_ = {0, 0};
  std::deque<std::pair<int, int>> deferred_weights_;
  std::vector<Op> ops_;
};

}  // namespace

absl::StatusOr<Schedule> GenerateDualPipe(int num_ranks, int num_microbatches) {
  if (num_ranks < 2 || num_ranks % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("dualpipe needs an even number of ranks >= 2, got ranks=", num_ranks));
  }
  if (num_microbatches % 2 != 0 || num_microbatches < 2 * num_ranks) {
    return absl::InvalidArgumentError(
        absl::StrCat("dualpipe needs an even number of micro-batches >= 2*ranks (", 2 * num_ranks,
                     "), got microbatches=", num_microbatches));
  }
  Schedule schedule;
  schedule.name = "dualpipe";
  schedule.num_ranks = num_ranks;
  const int per_direction = num_microbatches / 2;
  Route down{{}, per_direction};
  Route up{{}, per_direction};
  for (int s = 0; s < num_ranks; ++s) {
    down.hops.push_back(Hop{s, 0});
    up.hops.push_back(Hop{num_ranks - 1 - s, 1});
  }
  schedule.routes = {down, up};
  const int num_half_ranks = num_ranks / 2;
  for (int rank = 0; rank < num_ranks; ++rank) {
    RankShape shape;
    shape.half_rank = std::min(rank, num_ranks - 1 - rank);
    shape.num_half_ranks = num_half_ranks;
    shape.main_steps = per_direction - num_ranks + shape.half_rank + 1;
    shape.is_middle = rank == num_half_ranks - 1 || rank == num_half_ranks;
    if (rank >= num_half_ranks) shape.path_of_phase = {1, 0};
    schedule.ops.push_back(RankEmitter(shape).Emit());
  }
  return schedule;
}

absl::StatusOr<Schedule> GenerateDualPipeV(int num_devices, int num_microbatches) {
  if (num_devices < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("dualpipev needs ranks >= 1, got ranks=", num_devices));
  }
  if (num_microbatches < 2 * num_devices) {
    return absl::InvalidArgumentError(absl::StrCat("dualpipev needs micro-batches >= 2*ranks (",
                                                   2 * num_devices,
                                                   "), got microbatches=", num_microbatches));
  }
  Schedule schedule;
  schedule.name = "dualpipev";
  schedule.num_ranks = num_devices;
  schedule.routes = {VRoute(num_devices, num_microbatches)};
  for (int rank = 0; rank < num_devices; ++rank) {
    RankShape shape;
    shape.half_rank = rank;
    shape.num_half_ranks = num_devices;
    shape.main_steps = num_microbatches - 2 * num_devices + rank + 1;
    shape.is_middle = rank == num_devices - 1;
    schedule.ops.push_back(RankEmitter(shape).Emit());
  }
  return schedule;
}

}  // namespace dualpipe
