// Text renderings of a placement for the rebalance CLI and logs: one-line JSON for programs and a
// per-GPU listing for people. (The SVG picture is in placement_svg.h.)
#ifndef EPLB_PLACEMENT_FORMAT_H_
#define EPLB_PLACEMENT_FORMAT_H_

#include <string>

#include "eplb/balancedness.h"
#include "eplb/matrix.h"
#include "eplb/placement.h"

namespace eplb {

// One JSON object on one line with the keys "phy2log" [layers][replicas], "log2phy"
// [layers][experts][max_replicas] (-1 padded), "logcnt" [layers][experts] and "balancedness"
// [layers]. Precondition: report was computed for this placement.
std::string PlacementToJson(const Placement& placement, const BalancednessReport& report);

// A listing, per layer, of its balancedness and, per node and GPU, the GPU's load and the logical
// expert of each of its replicas. Precondition: loads and report belong to this placement.
std::string PlacementToText(const Placement& placement, const Matrix<double>& loads,
                            const BalancednessReport& report);

}  // namespace eplb

#endif  // EPLB_PLACEMENT_FORMAT_H_
