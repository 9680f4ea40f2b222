// Golden op orders of every schedule, each also passed through the validator.
//
// The DualPipe and DualPipeV goldens were made by working through DualPipe.step() and
// DualPipeV.step() of github.com/deepseek-ai/DualPipe phase by phase (counters per phase, the
// FIFO of deferred weight gradients), independently of this implementation. The 1F1B and ZB1P
// goldens follow the textbook rules: Megatron-LM's warm-up / steady / cool-down for 1F1B, and ZB-H1
// with rank r holding back r weight gradients.
#include "dualpipe/internal/golden.h"

#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "dualpipe/generate.h"
#include "dualpipe/schedule.h"
#include "dualpipe/validator.h"
#include "gtest/gtest.h"

namespace dualpipe {
namespace {

// (schedule, ranks, micro-batches); the golden is testdata/<schedule>_r<ranks>_m<micro-batches>.
class GoldenTest : public testing::TestWithParam<std::tuple<const char*, int, int>> {};

TEST_P(GoldenTest, MatchesGoldenAndValidates) {
  const auto [name, ranks, microbatches] = GetParam();
  absl::StatusOr<Schedule> schedule = GenerateSchedule(name, ranks, microbatches);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  absl::StatusOr<std::string> golden =
      internal::ReadGolden(absl::StrCat(name, "_r", ranks, "_m", microbatches, ".txt"));
  ASSERT_TRUE(golden.ok()) << golden.status();
  EXPECT_EQ(FormatSchedule(*schedule), *golden);
  EXPECT_TRUE(ValidateSchedule(*schedule).ok()) << ValidateSchedule(*schedule);
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, GoldenTest,
    testing::Values(std::tuple{"dualpipe", 2, 4}, std::tuple{"dualpipe", 4, 8},
                    std::tuple{"dualpipe", 4, 10}, std::tuple{"dualpipe", 6, 12},
                    std::tuple{"dualpipe", 8, 20}, std::tuple{"dualpipev", 1, 2},
                    std::tuple{"dualpipev", 2, 5}, std::tuple{"dualpipev", 3, 6},
                    std::tuple{"dualpipev", 4, 9}, std::tuple{"dualpipev", 4, 10},
                    std::tuple{"1f1b", 1, 3}, std::tuple{"1f1b", 3, 2}, std::tuple{"1f1b", 4, 8},
                    std::tuple{"1f1b", 5, 7}, std::tuple{"zb1p", 1, 3}, std::tuple{"zb1p", 3, 2},
                    std::tuple{"zb1p", 4, 8}, std::tuple{"zb1p", 5, 7}),
    [](const testing::TestParamInfo<GoldenTest::ParamType>& info) {
      return absl::StrCat(std::get<0>(info.param), "_r", std::get<1>(info.param), "_m",
                          std::get<2>(info.param));
    });

}  // namespace
}  // namespace dualpipe
