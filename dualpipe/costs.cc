#include "dualpipe/costs.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dualpipe {

absl::Status ValidateCosts(const OpCosts& costs) {
  const struct {
    const char* name;
    double value;
  } named[] = {{"forward", costs.forward},
               {"backward", costs.backward},
               {"weight", costs.weight},
               {"p2p_latency", costs.p2p_latency}};
  for (const auto& [name, value] : named) {
    if (!std::isfinite(value) || value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cost ", name, " must be finite and >= 0, got ", value));
    }
  }
  if (!std::isfinite(costs.forward_backward)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cost forward_backward must be finite, got ", costs.forward_backward));
  }
  if (costs.weight > costs.backward) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cost weight (", costs.weight, ") must not exceed backward (", costs.backward, ")"));
  }
  return absl::OkStatus();
}

double OpCost(const Op& op, const OpCosts& costs) {
  switch (op.kind) {
    case OpKind::kForward:
      return costs.forward;
    case OpKind::kBackward:
      return costs.backward;
    case OpKind::kBackwardInput:
      return costs.backward - costs.weight;
    case OpKind::kBackwardWeight:
      return costs.weight;
    case OpKind::kForwardBackward:
      return costs.forward_backward < 0 ? costs.forward + costs.backward : costs.forward_backward;
  }
  return 0;
}

}  // namespace dualpipe
