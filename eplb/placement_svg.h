// An SVG picture of a placement, in the style of DeepSeek's EPLB example figure: one row per
// layer, GPUs grouped by node, each replica a box labelled with its logical expert and shaded by
// the load it carries (its expert's load / replica count; darker is heavier).
#ifndef EPLB_PLACEMENT_SVG_H_
#define EPLB_PLACEMENT_SVG_H_

#include <cstdint>
#include <string>

#include "eplb/balancedness.h"
#include "eplb/matrix.h"
#include "eplb/placement.h"

namespace eplb {

// The most replica boxes (layers x replicas) PlacementToSvg draws: about 20 MB of SVG. A larger
// picture opens in no viewer; callers refuse it (the rebalance tool says so).
inline constexpr int64_t kMaxSvgReplicas = 100000;

// A standalone SVG document. Preconditions: loads [layers, experts] and report belong to this
// placement.
std::string PlacementToSvg(const Placement& placement, const Matrix<double>& loads,
                           const BalancednessReport& report);

}  // namespace eplb

#endif  // EPLB_PLACEMENT_SVG_H_
