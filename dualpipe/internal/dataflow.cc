#include "dualpipe/internal/dataflow.h"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dualpipe::internal {
namespace {

constexpr double kNotYet = std::numeric_limits<double>::infinity();

// Arrival bookkeeping for the values ops exchange: the activation a forward produces and the
// input gradient a backward (B or I) produces, per (route, stage, micro-batch).
class ValueBoard {
 public:
  explicit ValueBoard(const Schedule& schedule) : schedule_(schedule) {
    for (const Route& route : schedule.routes) {
      offsets_.push_back(size_);
      size_ += static_cast<int>(route.hops.size()) * route.num_microbatches;
    }
    activation_.assign(size_, kNotYet);
    gradient_.assign(size_, kNotYet);
  }

  // Marks what `part` produces as ready at `end` on its own rank.
  void Produce(const Part& part, double end) {
    if (part.kind == OpKind::kForward) activation_[Index(part)] = end;
    if (part.kind == OpKind::kBackward || part.kind == OpKind::kBackwardInput) {
      gradient_[Index(part)] = end;
    }
  }

  // Earliest time all inputs of `part` are usable on `rank`, or kNotYet. Names the first missing
  // input in `*missing` when there is one.
  double Ready(const Part& part, int rank, double p2p_latency, std::string* missing) const {
    const int num_stages = static_cast<int>(schedule_.routes[part.route].hops.size());
    double ready = 0;
    auto need = [&](bool activation, int stage) {
      Part source = part;
      source.stage = stage;
      const double t = (activation ? activation_ : gradient_)[Index(source)];
      const int producer = schedule_.routes[part.route].hops[stage].rank;
      if (t == kNotYet) {
        if (missing->empty()) {
          *missing = absl::StrCat(activation ? "the activation" : "the input gradient",
                                  " of stage ", stage, " of route ", part.route, " micro-batch ",
                                  part.microbatch, " from rank ", producer);
        }
        ready = kNotYet;
        return;
      }
      ready = std::max(ready, t + (producer == rank ? 0.0 : p2p_latency));
    };
    switch (part.kind) {
      case OpKind::kForward:
        if (part.stage > 0) need(true, part.stage - 1);
        break;
      case OpKind::kBackward:
      case OpKind::kBackwardInput:
        need(true, part.stage);
        if (part.stage + 1 < num_stages) need(false, part.stage + 1);
        break;
      case OpKind::kBackwardWeight:
        need(false, part.stage);
        break;
      case OpKind::kForwardBackward:
        break;
    }
    return ready;
  }

 private:
  int Index(const Part& part) const {
    return offsets_[part.route] + part.stage * schedule_.routes[part.route].num_microbatches +
           part.microbatch;
  }

  const Schedule& schedule_;
  std::vector<int> offsets_;
  int size_ = 0;
  std::vector<double> activation_;
  std::vector<double> gradient_;
};

}  // namespace

HopTable::HopTable(const Schedule& schedule)
    : num_ranks_(schedule.num_ranks), num_paths_(schedule.NumPaths()) {
  table_.assign(static_cast<size_t>(num_ranks_) * num_paths_, {-1, -1});
  for (int r = 0; r < static_cast<int>(schedule.routes.size()); ++r) {
    const std::vector<Hop>& hops = schedule.routes[r].hops;
    for (int s = 0; s < static_cast<int>(hops.size()); ++s) {
      table_[static_cast<size_t>(hops[s].rank) * num_paths_ + hops[s].path] = {r, s};
    }
  }
}

std::pair<int, int> HopTable::Find(int rank, int path) const {
  if (rank < 0 || rank >= num_ranks_ || path < 0 || path >= num_paths_) return {-1, -1};
  return table_[static_cast<size_t>(rank) * num_paths_ + path];
}

std::vector<Part> PartsOf(const HopTable& hops, int rank, const Op& op) {
  auto part = [&](OpKind kind, int path, int microbatch) {
    const auto [route, stage] = hops.Find(rank, path);
    return Part{kind, route, stage, microbatch};
  };
  if (op.kind == OpKind::kForwardBackward) {
    return {part(OpKind::kForward, op.path, op.microbatch),
            part(OpKind::kBackward, op.backward_path, op.backward_microbatch)};
  }
  return {part(op.kind, op.path, op.microbatch)};
}

absl::StatusOr<std::vector<std::vector<Interval>>> RunDataflow(
    const Schedule& schedule, const std::function<double(const Op&)>& duration,
    double p2p_latency) {
  const int num_ranks = schedule.num_ranks;
  const HopTable hops(schedule);
  std::vector<std::vector<std::vector<Part>>> parts(num_ranks);
  for (int rank = 0; rank < num_ranks; ++rank) {
    for (const Op& op : schedule.ops[rank]) parts[rank].push_back(PartsOf(hops, rank, op));
  }
  ValueBoard board(schedule);
  std::vector<std::vector<Interval>> intervals(num_ranks);
  std::vector<double> free_at(num_ranks, 0.0);
  bool progress = true;
  while (progress) {
    progress = false;
    for (int rank = 0; rank < num_ranks; ++rank) {
      const std::vector<Op>& ops = schedule.ops[rank];
      while (intervals[rank].size() < ops.size()) {
        const int index = static_cast<int>(intervals[rank].size());
        double start = free_at[rank];
        std::string missing;
        for (const Part& part : parts[rank][index]) {
          start = std::max(start, board.Ready(part, rank, p2p_latency, &missing));
        }
        if (start == kNotYet) break;
        const double end = start + duration(ops[index]);
        for (const Part& part : parts[rank][index]) board.Produce(part, end);
        intervals[rank].push_back(Interval{start, end});
        free_at[rank] = end;
        progress = true;
      }
    }
  }
  std::string stuck;
  for (int rank = 0; rank < num_ranks; ++rank) {
    const int index = static_cast<int>(intervals[rank].size());
    if (index == static_cast<int>(schedule.ops[rank].size())) continue;
    std::string missing;
    for (const Part& part : parts[rank][index]) board.Ready(part, rank, p2p_latency, &missing);
    absl::StrAppend(&stuck, stuck.empty() ? "" : "; ", "rank ", rank, " waits at op ", index, " (",
                    FormatOp(schedule.ops[rank][index]), ") for ", missing);
  }
  if (!stuck.empty()) return absl::FailedPreconditionError(absl::StrCat("deadlock: ", stuck));
  return intervals;
}

}  // namespace dualpipe::internal
