// The result of an EPLB rebalance: where every replica ("physical expert") of every logical expert
// lives, in the three layouts DeepSeek's EPLB returns, plus the topology it was computed for.
//
// Replica p of a layer lives on GPU p / (num_replicas / num_gpus); GPU g lives on node
// g / (num_gpus / num_nodes).
#ifndef EPLB_PLACEMENT_H_
#define EPLB_PLACEMENT_H_

#include <cstdint>

#include "absl/types/span.h"
#include "eplb/matrix.h"

namespace eplb {

struct Placement {
  int num_gpus = 0;
  int num_nodes = 0;
  // Third extent of log2phy: the largest replica count of any expert in any layer.
  int max_replicas = 0;
  // [layers, num_replicas]: logical expert of each replica.
  Matrix<int32_t> phy2log;
  // [layers, num_experts * max_replicas]: replicas of each expert in rank order, -1 padded.
  Matrix<int32_t> log2phy;
  // [layers, num_experts]: number of replicas of each expert.
  Matrix<int32_t> logcnt;

  int num_layers() const { return phy2log.rows(); }
  int num_replicas() const { return phy2log.cols(); }
  int num_experts() const { return logcnt.cols(); }
  int replicas_per_gpu() const { return num_replicas() / num_gpus; }
  int gpus_per_node() const { return num_gpus / num_nodes; }

  // The replica indices of `expert` in `layer`, padded with -1 to max_replicas entries.
  // Precondition: layer and expert in range.
  absl::Span<const int32_t> Log2Phy(int layer, int expert) const {
    return log2phy.row(layer).subspan(static_cast<size_t>(expert) * max_replicas, max_replicas);
  }

  friend bool operator==(const Placement&, const Placement&) = default;
};

}  // namespace eplb

#endif  // EPLB_PLACEMENT_H_
