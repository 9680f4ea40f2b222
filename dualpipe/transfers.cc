#include "dualpipe/transfers.h"

#include <vector>

#include "dualpipe/internal/dataflow.h"

namespace dualpipe {

std::vector<std::vector<OpTransfers>> DeriveTransfers(const Schedule& schedule) {
  const internal::HopTable hops(schedule);
  std::vector<std::vector<OpTransfers>> transfers(schedule.num_ranks);
  for (int rank = 0; rank < schedule.num_ranks; ++rank) {
    for (const Op& op : schedule.ops[rank]) {
      OpTransfers& io = transfers[rank].emplace_back();
      for (const internal::Part& part : internal::PartsOf(hops, rank, op)) {
        const std::vector<Hop>& route = schedule.routes[part.route].hops;
        const int last = static_cast<int>(route.size()) - 1;
        auto link = [&](std::vector<Transfer>& list, ValueKind kind, int peer_stage,
                        int producer_stage) {
          const int peer = route[peer_stage].rank;
          if (peer != rank) {
            list.push_back(Transfer{kind, peer, part.route, producer_stage, part.microbatch});
          }
        };
        if (part.kind == OpKind::kForward) {
          if (part.stage > 0) {
            link(io.receives, ValueKind::kActivation, part.stage - 1, part.stage - 1);
          }
          if (part.stage < last) {
            link(io.sends, ValueKind::kActivation, part.stage + 1, part.stage);
          }
        } else if (part.kind == OpKind::kBackward || part.kind == OpKind::kBackwardInput) {
          if (part.stage < last) {
            link(io.receives, ValueKind::kGradient, part.stage + 1, part.stage + 1);
          }
          if (part.stage > 0) link(io.sends, ValueKind::kGradient, part.stage - 1, part.stage);
        }
      }
    }
  }
  return transfers;
}

}  // namespace dualpipe
