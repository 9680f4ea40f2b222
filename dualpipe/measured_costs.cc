#include "dualpipe/measured_costs.h"

namespace dualpipe {
namespace {

int Index(OpKind kind) { return static_cast<int>(kind); }

}  // namespace

void OpTimeTotals::Add(const std::vector<OpTiming>& timeline) {
  for (const OpTiming& op : timeline) {
    seconds[Index(op.op.kind)] += op.end - op.start - op.wait;
    ++count[Index(op.op.kind)];
  }
}

void OpTimeTotals::Add(const OpTimeTotals& other) {
  for (size_t i = 0; i < seconds.size(); ++i) {
    seconds[i] += other.seconds[i];
    count[i] += other.count[i];
  }
}

OpCosts OpTimeTotals::Costs() const {
  auto mean = [&](OpKind kind) -> double {
    const int i = Index(kind);
    return count[i] > 0 ? seconds[i] / count[i] : -1;
  };
  OpCosts costs;
  costs.forward = std::max(0.0, mean(OpKind::kForward));
  const double weight = mean(OpKind::kBackwardWeight);
  const double input = mean(OpKind::kBackwardInput);
  const double full = mean(OpKind::kBackward);
  costs.weight = std::max(0.0, weight);
  if (full >= 0) {
    costs.backward = full;
  } else if (input >= 0) {
    costs.backward = input + costs.weight;
  } else {
    costs.backward = costs.weight;
  }
  costs.weight = std::min(costs.weight, costs.backward);
  costs.forward_backward = mean(OpKind::kForwardBackward);
  costs.p2p_latency = 0;
  return costs;
}

}  // namespace dualpipe
