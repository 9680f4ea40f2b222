#include "dualpipe/generate.h"

#include "gtest/gtest.h"

namespace dualpipe {
namespace {

TEST(GenerateScheduleTest, DispatchesByName) {
  for (const char* name : {"dualpipe", "dualpipev", "1f1b", "zb1p", "interleaved1f1b", "zbv"}) {
    absl::StatusOr<Schedule> schedule = GenerateSchedule(name, 4, 8);
    ASSERT_TRUE(schedule.ok()) << name << ": " << schedule.status();
    EXPECT_EQ(schedule->name, name);
    EXPECT_EQ(schedule->num_ranks, 4);
    EXPECT_EQ(schedule->TotalMicrobatches(), 8);
  }
}

TEST(GenerateScheduleTest, RejectsUnknownNamesAndBadShapes) {
  absl::StatusOr<Schedule> unknown = GenerateSchedule("gpipe", 4, 8);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("gpipe"), std::string::npos);
  EXPECT_EQ(GenerateSchedule("dualpipe", 3, 8).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dualpipe
