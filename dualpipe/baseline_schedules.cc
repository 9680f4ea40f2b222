#include "dualpipe/baseline_schedules.h"

#include <algorithm>
#include <deque>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dualpipe {
namespace {

absl::Status CheckShape(const char* name, int num_ranks, int num_microbatches) {
  if (num_ranks < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " needs ranks >= 1, got ranks=", num_ranks));
  }
  if (num_microbatches < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " needs micro-batches >= 1, got microbatches=", num_microbatches));
  }
  return absl::OkStatus();
}

Schedule SingleRoute(const char* name, int num_ranks, int num_microbatches) {
  Schedule schedule;
  schedule.name = name;
  schedule.num_ranks = num_ranks;
  Route route{{}, num_microbatches};
  for (int s = 0; s < num_ranks; ++s) route.hops.push_back(Hop{s, 0});
  schedule.routes = {route};
  schedule.ops.resize(num_ranks);
  return schedule;
}

// Appends the 1F1B order of one rank; `backward(m)` emits the backward of micro-batch m.
template <typename EmitBackward>
void OneForwardOneBackward(int num_ranks, int num_microbatches, int rank, std::vector<Op>& ops,
                           EmitBackward backward) {
  const int warmup = std::min(num_ranks - 1 - rank, num_microbatches);
  for (int m = 0; m < warmup; ++m) ops.push_back(Op::Forward(0, m));
  for (int m = warmup; m < num_microbatches; ++m) {
    ops.push_back(Op::Forward(0, m));
    backward(m - warmup);
  }
  for (int m = num_microbatches - warmup; m < num_microbatches; ++m) backward(m);
}

}  // namespace

absl::StatusOr<Schedule> Generate1F1B(int num_ranks, int num_microbatches) {
  if (absl::Status s = CheckShape("1f1b", num_ranks, num_microbatches); !s.ok()) return s;
  Schedule schedule = SingleRoute("1f1b", num_ranks, num_microbatches);
  for (int rank = 0; rank < num_ranks; ++rank) {
    std::vector<Op>& ops = schedule.ops[rank];
    OneForwardOneBackward(num_ranks, num_microbatches, rank, ops,
                          [&ops](int m) { ops.push_back(Op::Backward(0, m)); });
  }
  return schedule;
}

absl::StatusOr<Schedule> GenerateZB1P(int num_ranks, int num_microbatches) {
  if (absl::Status s = CheckShape("zb1p", num_ranks, num_microbatches); !s.ok()) return s;
  Schedule schedule = SingleRoute("zb1p", num_ranks, num_microbatches);
  for (int rank = 0; rank < num_ranks; ++rank) {
    std::vector<Op>& ops = schedule.ops[rank];
    std::deque<int> held;
    OneForwardOneBackward(num_ranks, num_microbatches, rank, ops, [&](int m) {
      ops.push_back(Op::BackwardInput(0, m));
      held.push_back(m);
      if (static_cast<int>(held.size()) > rank) {
        ops.push_back(Op::BackwardWeight(0, held.front()));
        held.pop_front();
      }
    });
    for (int m : held) ops.push_back(Op::BackwardWeight(0, m));
  }
  return schedule;
}

absl::StatusOr<Schedule> GenerateInterleaved1F1B(int num_ranks, int num_microbatches,
                                                 int num_chunks) {
  if (absl::Status s = CheckShape("interleaved1f1b", num_ranks, num_microbatches); !s.ok()) {
    return s;
  }
  if (num_chunks < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("interleaved1f1b needs chunks >= 2, got chunks=", num_chunks));
  }
  if (num_microbatches % num_ranks != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("interleaved1f1b needs micro-batches divisible by ranks (", num_ranks,
                     "), got microbatches=", num_microbatches));
  }
  Schedule schedule;
  schedule.name = "interleaved1f1b";
  schedule.num_ranks = num_ranks;
  Route route{{}, num_microbatches};
  for (int chunk = 0; chunk < num_chunks; ++chunk) {
    for (int rank = 0; rank < num_ranks; ++rank) route.hops.push_back(Hop{rank, chunk});
  }
  schedule.routes = {route};
  schedule.ops.resize(num_ranks);
  const int group = num_ranks * num_chunks;
  const int total = num_microbatches * num_chunks;
  // The k-th forward (backward) of a rank: its chunk and micro-batch.
  auto chunk_of = [&](int k, bool forward) {
    const int chunk = (k % group) / num_ranks;
    return forward ? chunk : num_chunks - 1 - chunk;
  };
  auto microbatch_of = [&](int k) { return (k / group) * num_ranks + k % num_ranks; };
  auto forward = [&](int k) { return Op::Forward(chunk_of(k, true), microbatch_of(k)); };
  auto backward = [&](int k) { return Op::Backward(chunk_of(k, false), microbatch_of(k)); };
  for (int rank = 0; rank < num_ranks; ++rank) {
    const int warmup =
        num_microbatches == num_ranks
            ? total
            : std::min((num_ranks - 1 - rank) * 2 + (num_chunks - 1) * num_ranks, total);
    std::vector<Op>& ops = schedule.ops[rank];
    for (int k = 0; k < warmup; ++k) ops.push_back(forward(k));
    for (int k = 0; k < total - warmup; ++k) {
      ops.push_back(forward(warmup + k));
      ops.push_back(backward(k));
    }
    for (int k = total - warmup; k < total; ++k) ops.push_back(backward(k));
  }
  return schedule;
}

}  // namespace dualpipe
