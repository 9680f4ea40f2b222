#include "comm/parallel_groups.h"

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/check.h"
#include "core/status_macros.h"

namespace comm {

absl::StatusOr<ParallelLayout> ParseParallelLayout(absl::string_view text) {
  const std::vector<std::string> parts = absl::StrSplit(text, 'x');
  int values[3] = {};
  bool ok = parts.size() == 3;
  for (size_t i = 0; ok && i < 3; ++i) {
    ok = absl::SimpleAtoi(parts[i], &values[i]) && values[i] > 0;
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "parallel layout '", text, "' is not PPxEPxDP with positive integers, e.g. 2x4x1"));
  }
  return ParallelLayout{.pp = values[0], .ep = values[1], .dp = values[2]};
}

absl::Status ValidateParallelLayout(const ParallelLayout& layout, int world_size) {
  if (layout.pp < 1 || layout.ep < 1 || layout.dp < 1) {
    return absl::InvalidArgumentError(absl::StrCat("parallel layout ", layout.pp, "x", layout.ep,
                                                   "x", layout.dp, " has a dimension below 1"));
  }
  if (static_cast<int64_t>(layout.pp) * layout.ep * layout.dp != world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("parallel layout ", layout.pp, "x", layout.ep, "x", layout.dp, " needs ",
                     static_cast<int64_t>(layout.pp) * layout.ep * layout.dp,
                     " ranks, the world has ", world_size));
  }
  return absl::OkStatus();
}

ParallelCoordinates CoordinatesOf(const ParallelLayout& layout, int rank) {
  DSMOE_CHECK(rank >= 0 && rank < layout.size(), "CoordinatesOf: rank ", rank,
              " outside a layout of ", layout.size());
  return ParallelCoordinates{.pp = rank / (layout.ep * layout.dp),
                             .ep = rank % layout.ep,
                             .dp = rank / layout.ep % layout.dp};
}

int RankOf(const ParallelLayout& layout, const ParallelCoordinates& c) {
  DSMOE_CHECK(c.pp >= 0 && c.pp < layout.pp && c.ep >= 0 && c.ep < layout.ep && c.dp >= 0 &&
                  c.dp < layout.dp,
              "RankOf: coordinates (", c.pp, ", ", c.ep, ", ", c.dp, ") outside the layout");
  return (c.pp * layout.dp + c.dp) * layout.ep + c.ep;
}

absl::StatusOr<ParallelGroups> BuildParallelGroups(Communicator& world,
                                                   const ParallelLayout& layout) {
  RETURN_IF_ERROR(ValidateParallelLayout(layout, world.size()));
  ParallelGroups groups;
  groups.layout = layout;
  const ParallelCoordinates c = CoordinatesOf(layout, world.rank());
  groups.coordinates = c;
  ASSIGN_OR_RETURN(groups.pipeline, world.Split(c.dp * layout.ep + c.ep, c.pp));
  ASSIGN_OR_RETURN(groups.expert, world.Split(c.pp * layout.dp + c.dp, c.ep));
  ASSIGN_OR_RETURN(groups.data, world.Split(c.pp * layout.ep + c.ep, c.dp));
  return groups;
}

}  // namespace comm
