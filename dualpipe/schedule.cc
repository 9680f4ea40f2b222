#include "dualpipe/schedule.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace dualpipe {

Op Op::Forward(int path, int microbatch) { return Op{OpKind::kForward, path, microbatch}; }

Op Op::Backward(int path, int microbatch) { return Op{OpKind::kBackward, path, microbatch}; }

Op Op::BackwardInput(int path, int microbatch) {
  return Op{OpKind::kBackwardInput, path, microbatch};
}

Op Op::BackwardWeight(int path, int microbatch) {
  return Op{OpKind::kBackwardWeight, path, microbatch};
}

Op Op::ForwardBackward(int forward_path, int forward_microbatch, int backward_path,
                       int backward_microbatch) {
  return Op{OpKind::kForwardBackward, forward_path, forward_microbatch, backward_path,
            backward_microbatch};
}

int Schedule::NumPaths() const {
  int num_paths = 0;
  for (const Route& route : routes) {
    for (const Hop& hop : route.hops) num_paths = std::max(num_paths, hop.path + 1);
  }
  return num_paths;
}

int Schedule::RouteOfPath(int path) const {
  for (int r = 0; r < static_cast<int>(routes.size()); ++r) {
    for (const Hop& hop : routes[r].hops) {
      if (hop.path == path) return r;
    }
  }
  return -1;
}

int Schedule::StageOf(int rank, int path) const {
  const int route = RouteOfPath(path);
  if (route < 0) return -1;
  const std::vector<Hop>& hops = routes[route].hops;
  for (int s = 0; s < static_cast<int>(hops.size()); ++s) {
    if (hops[s] == Hop{rank, path}) return s;
  }
  return -1;
}

int Schedule::TotalMicrobatches() const {
  int total = 0;
  for (const Route& route : routes) total += route.num_microbatches;
  return total;
}

Route VRoute(int num_ranks, int num_microbatches) {
  Route v{{}, num_microbatches};
  for (int s = 0; s < num_ranks; ++s) v.hops.push_back(Hop{s, 0});
  for (int s = num_ranks - 1; s >= 0; --s) v.hops.push_back(Hop{s, 1});
  return v;
}

std::string FormatOp(const Op& op) {
  switch (op.kind) {
    case OpKind::kForward:
      return absl::StrCat("F", op.path, ".", op.microbatch);
    case OpKind::kBackward:
      return absl::StrCat("B", op.path, ".", op.microbatch);
    case OpKind::kBackwardInput:
      return absl::StrCat("I", op.path, ".", op.microbatch);
    case OpKind::kBackwardWeight:
      return absl::StrCat("W", op.path, ".", op.microbatch);
    case OpKind::kForwardBackward:
      return absl::StrCat("F", op.path, ".", op.microbatch, "+B", op.backward_path, ".",
                          op.backward_microbatch);
  }
  return "?";
}

std::string FormatSchedule(const Schedule& schedule) {
  std::string out;
  for (int rank = 0; rank < static_cast<int>(schedule.ops.size()); ++rank) {
    absl::StrAppend(&out, "rank ", rank, ":");
    for (const Op& op : schedule.ops[rank]) absl::StrAppend(&out, " ", FormatOp(op));
    out += "\n";
  }
  return out;
}

}  // namespace dualpipe
