// Golden op orders of every schedule, each also passed through the validator.
//
// The DualPipe and DualPipeV goldens were made by working through DualPipe.step() and
// DualPipeV.step() of github.com/deepseek-ai/DualPipe phase by phase (counters per phase, the
// FIFO of deferred weight gradients), independently of this implementation. The other
// goldens follow the textbook rules: Megatron-LM's warm-up / steady / cool-down for 1F1B, ZB-H1
// with rank r holding back r weight gradients, and Megatron-LM's
// forward_backward_pipelining_with_interleaving (chunk groups of `ranks` micro-batches) for
// interleaved 1F1B. The ZB-V goldens (unit costs here; zbv_schedule_test has others) are the
// output of sail-sg/zero-bubble-pipeline-parallelism's zbv.py itself (pure Python, run with its
// Megatron imports stubbed).
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

// (schedule, ranks, micro-batches, chunks); the golden is
// testdata/<schedule>_r<ranks>_m<micro-batches>.txt, with _c<chunks> for interleaved1f1b.
class GoldenTest : public testing::TestWithParam<std::tuple<const char*, int, int, int>> {};

std::string GoldenName(const GoldenTest::ParamType& param) {
  const auto [name, ranks, microbatches, chunks] = param;
  return absl::StrCat(name, "_r", ranks, "_m", microbatches,
                      std::string(name) == "interleaved1f1b" ? absl::StrCat("_c", chunks) : "");
}

TEST_P(GoldenTest, MatchesGoldenAndValidates) {
  const auto [name, ranks, microbatches, chunks] = GetParam();
  absl::StatusOr<Schedule> schedule =
      GenerateSchedule(name, ranks, microbatches, GenerateOptions{.chunks = chunks});
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  absl::StatusOr<std::string> golden = internal::ReadGolden(GoldenName(GetParam()) + ".txt");
  ASSERT_TRUE(golden.ok()) << golden.status();
  EXPECT_EQ(FormatSchedule(*schedule), *golden);
  EXPECT_TRUE(ValidateSchedule(*schedule).ok()) << ValidateSchedule(*schedule);
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, GoldenTest,
    testing::Values(std::tuple{"dualpipe", 2, 4, 0}, std::tuple{"dualpipe", 4, 8, 0},
                    std::tuple{"dualpipe", 4, 10, 0}, std::tuple{"dualpipe", 6, 12, 0},
                    std::tuple{"dualpipe", 8, 20, 0}, std::tuple{"dualpipev", 1, 2, 0},
                    std::tuple{"dualpipev", 2, 5, 0}, std::tuple{"dualpipev", 3, 6, 0},
                    std::tuple{"dualpipev", 4, 9, 0}, std::tuple{"dualpipev", 4, 10, 0},
                    std::tuple{"1f1b", 1, 3, 0}, std::tuple{"1f1b", 3, 2, 0},
                    std::tuple{"1f1b", 4, 8, 0}, std::tuple{"1f1b", 5, 7, 0},
                    std::tuple{"zb1p", 1, 3, 0}, std::tuple{"zb1p", 3, 2, 0},
                    std::tuple{"zb1p", 4, 8, 0}, std::tuple{"zb1p", 5, 7, 0},
                    std::tuple{"interleaved1f1b", 4, 8, 2}, std::tuple{"interleaved1f1b", 2, 4, 3},
                    std::tuple{"interleaved1f1b", 3, 3, 2}, std::tuple{"interleaved1f1b", 4, 12, 2},
                    std::tuple{"interleaved1f1b", 3, 6, 4}, std::tuple{"zbv", 1, 3, 0},
                    std::tuple{"zbv", 2, 4, 0}, std::tuple{"zbv", 3, 6, 0},
                    std::tuple{"zbv", 4, 8, 0}, std::tuple{"zbv", 4, 12, 0},
                    std::tuple{"zbv", 5, 7, 0}),
    [](const testing::TestParamInfo<GoldenTest::ParamType>& info) {
      return GoldenName(info.param);
    });

}  // namespace
}  // namespace dualpipe
