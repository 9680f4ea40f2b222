#include "dualpipe/placement.h"

#include <vector>

#include "dualpipe/generate.h"
#include "gtest/gtest.h"

namespace dualpipe {
namespace {

TEST(PlacementTest, DualPipeAndDualPipeVFollowDeepSeek) {
  absl::StatusOr<Schedule> schedule = GenerateSchedule("dualpipe", 4, 8);
  ASSERT_TRUE(schedule.ok());
  const std::vector<HostedStage> rank1 = HostedStages(*schedule, 1);
  ASSERT_EQ(rank1.size(), 2u);
  EXPECT_EQ(rank1[0].stage, 1);  // path 0: model stage r
  EXPECT_EQ(rank1[0].first_microbatch, 0);
  EXPECT_EQ(rank1[1].stage, 2);  // path 1: model stage PP-1-r
  EXPECT_EQ(rank1[1].first_microbatch, 4);
  absl::StatusOr<Schedule> v = GenerateSchedule("dualpipev", 3, 6);
  ASSERT_TRUE(v.ok());
  const std::vector<HostedStage> v0 = HostedStages(*v, 0);
  ASSERT_EQ(v0.size(), 2u);
  EXPECT_EQ(v0[0].stage, 0);
  EXPECT_EQ(v0[1].stage, 5);  // 2 * ranks - 1 - r
}

TEST(PlacementTest, InterleavedHostsOneStagePerChunk) {
  absl::StatusOr<Schedule> schedule = GenerateSchedule("interleaved1f1b", 2, 4);
  ASSERT_TRUE(schedule.ok());
  const std::vector<HostedStage> rank1 = HostedStages(*schedule, 1);
  ASSERT_EQ(rank1.size(), 2u);
  EXPECT_EQ(rank1[0].stage, 1);
  EXPECT_EQ(rank1[1].stage, 3);
  EXPECT_TRUE(rank1[1].last());
  EXPECT_FALSE(rank1[0].first());
}

}  // namespace
}  // namespace dualpipe
