#include "comm/parallel_groups.h"

#include <cstdint>
#include <vector>

#include "comm/local_communicator.h"
#include "core/status_macros.h"
#include "gtest/gtest.h"

namespace comm {
namespace {

TEST(ParallelLayoutTest, ParseAndValidate) {
  const absl::StatusOr<ParallelLayout> layout = ParseParallelLayout("2x4x3");
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->pp, 2);
  EXPECT_EQ(layout->ep, 4);
  EXPECT_EQ(layout->dp, 3);
  EXPECT_TRUE(ValidateParallelLayout(*layout, 24).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateParallelLayout(*layout, 16)));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateParallelLayout({.pp = 0}, 0)));
  for (const char* bad : {"", "2x4", "2x4x0", "2x4x-1", "axbxc", "2x4x1x1"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseParallelLayout(bad).status())) << bad;
  }
}

TEST(ParallelLayoutTest, CoordinatesRoundTripWithExpertsFastest) {
  const ParallelLayout layout{.pp = 2, .ep = 4, .dp = 3};
  for (int rank = 0; rank < layout.size(); ++rank) {
    EXPECT_EQ(RankOf(layout, CoordinatesOf(layout, rank)), rank);
  }
  const ParallelCoordinates c = CoordinatesOf(layout, 13);  // 13 = (1 * 3 + 0) * 4 + 1
  EXPECT_EQ(c.pp, 1);
  EXPECT_EQ(c.dp, 0);
  EXPECT_EQ(c.ep, 1);
}

// World ranks of `group`'s members in group-rank order.
absl::StatusOr<std::vector<int32_t>> Members(Communicator& group, int world_rank) {
  std::vector<int32_t> mine = {world_rank};
  std::vector<int32_t> all(group.size());
  RETURN_IF_ERROR(group.AllGather(ConstHostBuffer<int32_t>(mine), HostBuffer<int32_t>(all)));
  return all;
}

TEST(BuildParallelGroupsTest, GroupsHoldTheRightRanksInOrder) {
  const ParallelLayout layout{.pp = 2, .ep = 2, .dp = 3};
  const std::vector<absl::Status> statuses =
      RunLocalRanks(layout.size(), [&](Communicator& world) -> absl::Status {
        ASSIGN_OR_RETURN(ParallelGroups groups, BuildParallelGroups(world, layout));
        const ParallelCoordinates c = groups.coordinates;
        EXPECT_EQ(groups.pipeline->rank(), c.pp);
        EXPECT_EQ(groups.expert->rank(), c.ep);
        EXPECT_EQ(groups.data->rank(), c.dp);
        ASSIGN_OR_RETURN(std::vector<int32_t> pipeline, Members(*groups.pipeline, world.rank()));
        ASSIGN_OR_RETURN(std::vector<int32_t> expert, Members(*groups.expert, world.rank()));
        ASSIGN_OR_RETURN(std::vector<int32_t> data, Members(*groups.data, world.rank()));
        std::vector<int32_t> want_pipeline, want_expert, want_data;
        for (int i = 0; i < layout.pp; ++i) {
          want_pipeline.push_back(RankOf(layout, {.pp = i, .ep = c.ep, .dp = c.dp}));
        }
        for (int i = 0; i < layout.ep; ++i) {
          want_expert.push_back(RankOf(layout, {.pp = c.pp, .ep = i, .dp = c.dp}));
        }
        for (int i = 0; i < layout.dp; ++i) {
          want_data.push_back(RankOf(layout, {.pp = c.pp, .ep = c.ep, .dp = i}));
        }
        EXPECT_EQ(pipeline, want_pipeline) << "rank " << world.rank();
        EXPECT_EQ(expert, want_expert) << "rank " << world.rank();
        EXPECT_EQ(data, want_data) << "rank " << world.rank();
        return world.Barrier();
      });
  for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
}

TEST(BuildParallelGroupsTest, LayoutThatDoesNotFitIsInvalidArgument) {
  const std::vector<absl::Status> statuses = RunLocalRanks(4, [](Communicator& world) {
    return BuildParallelGroups(world, {.pp = 2, .ep = 3, .dp = 1}).status();
  });
  for (const absl::Status& status : statuses) EXPECT_TRUE(absl::IsInvalidArgument(status));
}

}  // namespace
}  // namespace comm
