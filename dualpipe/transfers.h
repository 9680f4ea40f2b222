// The point-to-point transfers a schedule implies: each forward sends its activation to the rank
// of the next stage, each backward (B or I) sends its input gradient to the rank of the previous
// stage, and the consuming op on that rank receives it. Values that stay on one rank (DualPipeV's
// turn at the last rank) are not transfers.
#ifndef DUALPIPE_TRANSFERS_H_
#define DUALPIPE_TRANSFERS_H_

#include <vector>

#include "dualpipe/schedule.h"

namespace dualpipe {

enum class ValueKind {
  kActivation,  // Output of a forward, input of the next stage's forward.
  kGradient,    // Input gradient from a backward, output gradient of the previous stage.
};

// One value crossing ranks, seen from one side: `peer` is the other rank; (route, stage,
// microbatch) name the stage that produced it.
struct Transfer {
  ValueKind kind = ValueKind::kActivation;
  int peer = 0;
  int route = 0;
  int stage = 0;
  int microbatch = 0;
  friend bool operator==(const Transfer&, const Transfer&) = default;
};

// What one op receives before it runs and sends after it ends.
struct OpTransfers {
  std::vector<Transfer> receives;
  std::vector<Transfer> sends;
};

// Returns [rank][op index] -> the op's transfers, in the op's part order (forward part first).
// Precondition: `schedule` passes the validator's structure checks (ValidateSchedule's first
// step); op labels name hosted paths. Thread-safe.
std::vector<std::vector<OpTransfers>> DeriveTransfers(const Schedule& schedule);

}  // namespace dualpipe

#endif  // DUALPIPE_TRANSFERS_H_
