#include "dualpipe/validator.h"

#include <string>

#include "absl/status/status.h"
#include "dualpipe/schedule.h"
#include "gtest/gtest.h"

namespace dualpipe {
namespace {

// Two ranks, one route 0 -> 1, two micro-batches.
Schedule Pipeline(std::vector<Op> rank0, std::vector<Op> rank1) {
  Schedule schedule;
  schedule.name = "test";
  schedule.num_ranks = 2;
  schedule.routes = {Route{{{0, 0}, {1, 0}}, 2}};
  schedule.ops = {std::move(rank0), std::move(rank1)};
  return schedule;
}

testing::AssertionResult FailsWith(const Schedule& schedule, absl::StatusCode code,
                                   const std::string& fragment) {
  const absl::Status status = ValidateSchedule(schedule);
  if (status.code() == code && status.message().find(fragment) != std::string::npos) {
    return testing::AssertionSuccess();
  }
  return testing::AssertionFailure() << "got " << status;
}

TEST(ValidatorTest, AcceptsALegalSchedule) {
  const Schedule schedule =
      Pipeline({Op::Forward(0, 0), Op::Forward(0, 1), Op::Backward(0, 0), Op::BackwardInput(0, 1),
                Op::BackwardWeight(0, 1)},
               {Op::Forward(0, 0), Op::ForwardBackward(0, 1, 0, 0), Op::Backward(0, 1)});
  EXPECT_TRUE(ValidateSchedule(schedule).ok()) << ValidateSchedule(schedule);
}

TEST(ValidatorTest, RejectsAMissingBackward) {
  const Schedule schedule =
      Pipeline({Op::Forward(0, 0), Op::Forward(0, 1), Op::Backward(0, 0)},
               {Op::Forward(0, 0), Op::Backward(0, 0), Op::Forward(0, 1), Op::Backward(0, 1)});
  EXPECT_TRUE(FailsWith(schedule, absl::StatusCode::kInvalidArgument,
                        "rank 0 path 0 micro-batch 1 has 1 F, 0 B, 0 I, 0 W"));
}

TEST(ValidatorTest, RejectsADuplicateForward) {
  const Schedule schedule =
      Pipeline({Op::Forward(0, 0), Op::Forward(0, 0), Op::Forward(0, 1), Op::Backward(0, 0),
                Op::Backward(0, 1)},
               {Op::Forward(0, 0), Op::Backward(0, 0), Op::Forward(0, 1), Op::Backward(0, 1)});
  EXPECT_TRUE(FailsWith(schedule, absl::StatusCode::kInvalidArgument, "has 2 F"));
}

TEST(ValidatorTest, RejectsBackwardBeforeForward) {
  const Schedule schedule =
      Pipeline({Op::Forward(0, 0), Op::Forward(0, 1), Op::Backward(0, 0), Op::Backward(0, 1)},
               {Op::Forward(0, 0), Op::Backward(0, 1), Op::Backward(0, 0), Op::Forward(0, 1)});
  EXPECT_TRUE(
      FailsWith(schedule, absl::StatusCode::kInvalidArgument, "does not come after its forward"));
}

TEST(ValidatorTest, RejectsAPairOfTheSameStageAndMicroBatch) {
  const Schedule schedule =
      Pipeline({Op::Forward(0, 0), Op::Forward(0, 1), Op::Backward(0, 0), Op::Backward(0, 1)},
               {Op::ForwardBackward(0, 0, 0, 0), Op::Forward(0, 1), Op::Backward(0, 1)});
  EXPECT_TRUE(
      FailsWith(schedule, absl::StatusCode::kInvalidArgument, "does not come after its forward"));
}

TEST(ValidatorTest, RejectsWeightBeforeInputAndOutOfFifoOrder) {
  const std::vector<Op> rank1 = {Op::Forward(0, 0), Op::Backward(0, 0), Op::Forward(0, 1),
                                 Op::Backward(0, 1)};
  EXPECT_TRUE(FailsWith(Pipeline({Op::Forward(0, 0), Op::Forward(0, 1), Op::BackwardWeight(0, 0),
                                  Op::BackwardInput(0, 0), Op::Backward(0, 1)},
                                 rank1),
                        absl::StatusCode::kInvalidArgument, "oldest pending I"));
  EXPECT_TRUE(FailsWith(
      Pipeline({Op::Forward(0, 0), Op::Forward(0, 1), Op::BackwardInput(0, 0),
                Op::BackwardInput(0, 1), Op::BackwardWeight(0, 1), Op::BackwardWeight(0, 0)},
               rank1),
      absl::StatusCode::kInvalidArgument, "rank 0 op 4 (W0.1)"));
}

TEST(ValidatorTest, RejectsAStreamConsumedOutOfOrder) {
  // Rank 1 takes micro-batch 1's activation before micro-batch 0's: legal data flow, but the
  // activations from rank 0 are no longer a FIFO.
  const Schedule schedule =
      Pipeline({Op::Forward(0, 0), Op::Forward(0, 1), Op::Backward(0, 0), Op::Backward(0, 1)},
               {Op::Forward(0, 1), Op::Forward(0, 0), Op::Backward(0, 0), Op::Backward(0, 1)});
  EXPECT_TRUE(FailsWith(schedule, absl::StatusCode::kInvalidArgument,
                        "rank 1 consumes the activations of route 0 from rank 0 out of order: "
                        "receive 0 is micro-batch 1 but send 0 is micro-batch 0"));
}

TEST(ValidatorTest, RejectsOpsOnAPathTheRankDoesNotHost) {
  const Schedule schedule = Pipeline({Op::Forward(1, 0)}, {Op::Forward(0, 0), Op::Backward(0, 0),
                                                           Op::Forward(0, 1), Op::Backward(0, 1)});
  EXPECT_TRUE(FailsWith(schedule, absl::StatusCode::kInvalidArgument, "rank 0 op 0 (F1.0)"));
}

TEST(ValidatorTest, RejectsMicroBatchesOutOfRange) {
  const Schedule schedule = Pipeline({Op::Forward(0, 2)}, {});
  EXPECT_TRUE(FailsWith(schedule, absl::StatusCode::kInvalidArgument, "rank 0 op 0 (F0.2)"));
}

TEST(ValidatorTest, RejectsBrokenStructure) {
  Schedule schedule = Pipeline({}, {});
  schedule.ops.pop_back();
  EXPECT_TRUE(FailsWith(schedule, absl::StatusCode::kInvalidArgument, "num_ranks=2 but 1"));
  schedule = Pipeline({}, {});
  schedule.routes.push_back(Route{{{1, 0}}, 1});
  EXPECT_TRUE(FailsWith(schedule, absl::StatusCode::kInvalidArgument, "appears twice"));
  schedule = Pipeline({}, {});
  schedule.routes[0].hops[1].rank = 2;
  EXPECT_TRUE(FailsWith(schedule, absl::StatusCode::kInvalidArgument, "hop (rank 2"));
}

TEST(ValidatorTest, DetectsDeadlock) {
  Schedule two_ranks;
  two_ranks.num_ranks = 2;
  // Path 0 goes 0 -> 1, path 1 goes 1 -> 0; each rank first runs the second stage of one path.
  two_ranks.routes = {Route{{{0, 0}, {1, 0}}, 1}, Route{{{1, 1}, {0, 1}}, 1}};
  two_ranks.ops = {{Op::Forward(1, 0), Op::Forward(0, 0), Op::Backward(0, 0), Op::Backward(1, 0)},
                   {Op::Forward(0, 0), Op::Forward(1, 0), Op::Backward(1, 0), Op::Backward(0, 0)}};
  EXPECT_TRUE(FailsWith(two_ranks, absl::StatusCode::kFailedPrecondition,
                        "deadlock: rank 0 waits at op 0 (F1.0) for the activation of stage 0"));
}

}  // namespace
}  // namespace dualpipe
