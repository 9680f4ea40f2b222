#include "dualpipe/validator.h"

#include <deque>
#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "dualpipe/internal/dataflow.h"
#include "dualpipe/transfers.h"

namespace dualpipe {
namespace {

absl::Status ValidateStructure(const Schedule& schedule) {
  if (schedule.num_ranks < 1 || static_cast<int>(schedule.ops.size()) != schedule.num_ranks) {
    return absl::InvalidArgumentError(absl::StrCat("schedule has num_ranks=", schedule.num_ranks,
                                                   " but ", schedule.ops.size(), " op lists"));
  }
  std::set<std::pair<int, int>> hops;
  std::map<int, int> route_of_path;
  for (int r = 0; r < static_cast<int>(schedule.routes.size()); ++r) {
    const Route& route = schedule.routes[r];
    if (route.hops.empty() || route.num_microbatches < 1) {
      return absl::InvalidArgumentError(absl::StrCat("route ", r, " is empty"));
    }
    for (const Hop& hop : route.hops) {
      if (hop.rank < 0 || hop.rank >= schedule.num_ranks || hop.path < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("route ", r, " has hop (rank ", hop.rank, ", path ", hop.path, ")"));
      }
      if (!hops.insert({hop.rank, hop.path}).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("hop (rank ", hop.rank, ", path ", hop.path, ") appears twice"));
      }
      if (auto [it, added] = route_of_path.emplace(hop.path, r); !added && it->second != r) {
        return absl::InvalidArgumentError(
            absl::StrCat("path ", hop.path, " belongs to routes ", it->second, " and ", r));
      }
    }
  }
  const internal::HopTable table(schedule);
  for (int rank = 0; rank < schedule.num_ranks; ++rank) {
    for (int i = 0; i < static_cast<int>(schedule.ops[rank].size()); ++i) {
      const Op& op = schedule.ops[rank][i];
      std::vector<std::pair<int, int>> labels = {{op.path, op.microbatch}};
      if (op.kind == OpKind::kForwardBackward) {
        labels.push_back({op.backward_path, op.backward_microbatch});
      }
      for (const auto& [path, microbatch] : labels) {
        const int route = table.Find(rank, path).first;
        if (route < 0 || microbatch < 0 || microbatch >= schedule.routes[route].num_microbatches) {
          return absl::InvalidArgumentError(
              absl::StrCat("rank ", rank, " op ", i, " (", FormatOp(op),
                           ") names a path or micro-batch ", "that this rank does not host"));
        }
      }
    }
  }
  return absl::OkStatus();
}

// Positions of each kind of part of one (route, stage, micro-batch) on its rank.
struct Seen {
  std::vector<int> forward, backward, input, weight;
};

absl::Status ValidateCompleteness(const Schedule& schedule) {
  using Key = std::tuple<int, int, int>;  // route, stage, micro-batch.
  std::map<Key, Seen> seen;
  const internal::HopTable hops(schedule);
  for (int rank = 0; rank < schedule.num_ranks; ++rank) {
    std::deque<Key> pending_weights;
    for (int i = 0; i < static_cast<int>(schedule.ops[rank].size()); ++i) {
      const Op& op = schedule.ops[rank][i];
      for (const internal::Part& part : internal::PartsOf(hops, rank, op)) {
        const Key key{part.route, part.stage, part.microbatch};
        Seen& s = seen[key];
        switch (part.kind) {
          case OpKind::kForward:
            s.forward.push_back(i);
            break;
          case OpKind::kBackward:
            s.backward.push_back(i);
            break;
          case OpKind::kBackwardInput:
            s.input.push_back(i);
            pending_weights.push_back(key);
            break;
          case OpKind::kBackwardWeight:
            s.weight.push_back(i);
            if (pending_weights.empty() || pending_weights.front() != key) {
              return absl::InvalidArgumentError(
                  absl::StrCat("rank ", rank, " op ", i, " (", FormatOp(op),
                               ") is not the weight gradient of the oldest pending I"));
            }
            pending_weights.pop_front();
            break;
          case OpKind::kForwardBackward:
            break;
        }
      }
    }
  }
  for (int r = 0; r < static_cast<int>(schedule.routes.size()); ++r) {
    const Route& route = schedule.routes[r];
    for (int stage = 0; stage < static_cast<int>(route.hops.size()); ++stage) {
      for (int m = 0; m < route.num_microbatches; ++m) {
        const Seen& s = seen[Key{r, stage, m}];
        const std::string where = absl::StrCat("rank ", route.hops[stage].rank, " path ",
                                               route.hops[stage].path, " micro-batch ", m);
        const bool split = s.backward.empty() && s.input.size() == 1 && s.weight.size() == 1;
        const bool whole = s.backward.size() == 1 && s.input.empty() && s.weight.empty();
        if (s.forward.size() != 1 || !(split || whole)) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, " has ", s.forward.size(), " F, ", s.backward.size(), " B, ", s.input.size(),
              " I, ", s.weight.size(), " W; needs one F and one B or I+W"));
        }
        const int backward_at = whole ? s.backward[0] : s.input[0];
        if (backward_at <= s.forward[0]) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": backward at op ", backward_at,
                                                         " does not come after its forward at op ",
                                                         s.forward[0]));
        }
        if (split && s.weight[0] <= s.input[0]) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": W at op ", s.weight[0], " precedes its I at op ", s.input[0]));
        }
      }
    }
  }
  return absl::OkStatus();
}

// Each (sender, receiver, kind, route) stream must be consumed in the order it is produced.
absl::Status ValidateStreams(const Schedule& schedule) {
  using Stream = std::tuple<int, int, ValueKind, int>;  // sender, receiver, kind, route.
  using Value = std::pair<int, int>;                    // producing stage, micro-batch.
  std::map<Stream, std::vector<Value>> sent;
  std::map<Stream, std::vector<Value>> received;
  const std::vector<std::vector<OpTransfers>> transfers = DeriveTransfers(schedule);
  for (int rank = 0; rank < schedule.num_ranks; ++rank) {
    for (const OpTransfers& io : transfers[rank]) {
      for (const Transfer& t : io.sends) {
        sent[{rank, t.peer, t.kind, t.route}].push_back({t.stage, t.microbatch});
      }
      for (const Transfer& t : io.receives) {
        received[{t.peer, rank, t.kind, t.route}].push_back({t.stage, t.microbatch});
      }
    }
  }
  for (const auto& [stream, values] : sent) {
    const std::vector<Value>& got = received[stream];
    for (size_t i = 0; i < values.size() && i < got.size(); ++i) {
      if (values[i] != got[i]) {
        const auto [sender, receiver, kind, route] = stream;
        return absl::InvalidArgumentError(absl::StrCat(
            "rank ", receiver, " consumes the ",
            kind == ValueKind::kActivation ? "activations" : "gradients", " of route ", route,
            " from rank ", sender, " out of order: receive ", i, " is micro-batch ", got[i].second,
            " but send ", i, " is micro-batch ", values[i].second));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSchedule(const Schedule& schedule) {
  RETURN_IF_ERROR(ValidateStructure(schedule));
  RETURN_IF_ERROR(ValidateCompleteness(schedule));
  RETURN_IF_ERROR(ValidateStreams(schedule));
  return internal::RunDataflow(
             schedule, [](const Op&) { return 1.0; }, 0.0)
      .status();
}

}  // namespace dualpipe
