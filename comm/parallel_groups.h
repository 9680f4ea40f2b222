// The pipeline-, expert- and data-parallel groups of a PP x EP x DP layout.
//
// Ranks are laid out with the expert index fastest, then data, then pipeline:
//   rank = (pp_index * dp + dp_index) * ep + ep_index
// so an expert group is ep consecutive ranks (one node's GPUs when ep divides the GPUs per node,
// keeping the all-to-all of MoE dispatch inside a node), and the pipeline groups are the slowest.
#ifndef COMM_PARALLEL_GROUPS_H_
#define COMM_PARALLEL_GROUPS_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "comm/communicator.h"

namespace comm {

struct ParallelLayout {
  int pp = 1;  // pipeline stages
  int ep = 1;  // expert-parallel ranks
  int dp = 1;  // data-parallel replicas

  int size() const { return pp * ep * dp; }
};

// A rank's index along each dimension.
struct ParallelCoordinates {
  int pp = 0;
  int ep = 0;
  int dp = 0;
};

// Parses "PPxEPxDP", e.g. "2x4x1"; INVALID_ARGUMENT unless three positive integers.
absl::StatusOr<ParallelLayout> ParseParallelLayout(absl::string_view text);

// OK if every dimension is positive and the product is `world_size`; else INVALID_ARGUMENT.
absl::Status ValidateParallelLayout(const ParallelLayout& layout, int world_size);

// The coordinates of `rank` and back. Preconditions: a valid layout, 0 <= rank < layout.size(),
// coordinates within the layout.
ParallelCoordinates CoordinatesOf(const ParallelLayout& layout, int rank);
int RankOf(const ParallelLayout& layout, const ParallelCoordinates& coordinates);

// This rank's three groups. In each, ranks are ordered by their index along that dimension, so
// pipeline->rank() == coordinates.pp, expert->rank() == coordinates.ep, data->rank() ==
// coordinates.dp.
struct ParallelGroups {
  ParallelLayout layout;
  ParallelCoordinates coordinates;
  std::unique_ptr<Communicator> pipeline;  // pp ranks: same (dp, ep)
  std::unique_ptr<Communicator> expert;    // ep ranks: same (pp, dp)
  std::unique_ptr<Communicator> data;      // dp ranks: same (pp, ep)
};

// Collective over `world`: builds the groups with three Splits. INVALID_ARGUMENT if the layout
// does not fit world.size(); else the errors of Split. `world` stays usable and independent.
absl::StatusOr<ParallelGroups> BuildParallelGroups(Communicator& world,
                                                   const ParallelLayout& layout);

}  // namespace comm

#endif  // COMM_PARALLEL_GROUPS_H_
