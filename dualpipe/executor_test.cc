#include "dualpipe/executor.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "comm/local_communicator.h"
#include "dualpipe/generate.h"
#include "dualpipe/internal/mlp_stage.h"
#include "dualpipe/placement.h"
#include "gtest/gtest.h"

namespace dualpipe {
namespace {

using internal::MlpSpec;
using internal::MlpStage;

struct Case {
  std::string schedule;
  int ranks;
  int microbatches;
};

std::string CaseName(const testing::TestParamInfo<Case>& info) {
  return absl::StrCat(info.param.schedule, "_pp", info.param.ranks, "_m", info.param.microbatches);
}

int NumStages(const Schedule& schedule) {
  int stages = 0;
  for (const Route& route : schedule.routes) {
    stages = std::max(stages, static_cast<int>(route.hops.size()));
  }
  return stages;
}

// What one rank's executor produced.
struct RankOutcome {
  absl::Status status;
  StepResult step;
  // [route][stage] gradients of the stages this rank hosts.
  std::map<std::pair<int, int>, std::vector<float>> w1, w2;
};

// Runs one step of `schedule` on ranks as threads with MLP stages of `spec`.
std::vector<RankOutcome> RunPipelined(const Schedule& schedule, const MlpSpec& spec,
                                      int steps = 1) {
  std::vector<RankOutcome> outcomes(schedule.num_ranks);
  const std::vector<std::vector<std::byte>> inputs =
      internal::MlpInputBytes(spec, schedule.TotalMicrobatches());
  std::vector<absl::Span<const std::byte>> input_spans(inputs.begin(), inputs.end());
  comm::RunLocalRanks(schedule.num_ranks, [&](comm::Communicator& comm) {
    RankOutcome& outcome = outcomes[comm.rank()];
    const internal::HostedMlpStages stages =
        internal::MakeHostedStages(spec, schedule, comm.rank());
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::Create(schedule, stages.by_path, &comm);
    if (!executor.ok()) return outcome.status = executor.status();
    for (int step = 0; step < steps; ++step) {
      absl::StatusOr<StepResult> result = (*executor)->Step(input_spans);
      if (!result.ok()) return outcome.status = result.status();
      outcome.step = *std::move(result);
    }
    for (const HostedStage& hs : HostedStages(schedule, comm.rank())) {
      const MlpStage& stage = *static_cast<const MlpStage*>(stages.by_path[hs.path]);
      EXPECT_EQ(stage.in_flight(), 0) << "rank " << comm.rank() << " path " << hs.path;
      outcome.w1[{hs.route, hs.stage}] = stage.grad_w1();
      outcome.w2[{hs.route, hs.stage}] = stage.grad_w2();
    }
    return outcome.status;
  });
  return outcomes;
}

class ExecutorEqualsSequentialTest : public testing::TestWithParam<Case> {};

// The pipelined step's losses and each stage copy's weight gradients equal, bit for bit, those
// of a single-rank run of the same stages micro-batch by micro-batch: every op computes what the
// sequential run computes, and each stage object accumulates its micro-batches' gradients in the
// same order (micro-batch order, which every generated schedule keeps for one path's W's).
TEST_P(ExecutorEqualsSequentialTest, LossesAndGradientsBitwiseEqual) {
  const Case& c = GetParam();
  absl::StatusOr<Schedule> schedule = GenerateSchedule(c.schedule, c.ranks, c.microbatches);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  MlpSpec spec;
  spec.num_stages = NumStages(*schedule);

  std::vector<internal::RouteMicrobatches> routes;
  for (int r = 0; r < static_cast<int>(schedule->routes.size()); ++r) {
    routes.push_back({FirstMicrobatch(*schedule, r), schedule->routes[r].num_microbatches});
  }
  absl::StatusOr<internal::SequentialResult> reference =
      internal::RunSequential(spec, routes, /*steps=*/2);
  ASSERT_TRUE(reference.ok()) << reference.status();

  // Two steps: gradients accumulate over both, losses are the same each step.
  const std::vector<RankOutcome> outcomes = RunPipelined(*schedule, spec, /*steps=*/2);
  for (int rank = 0; rank < c.ranks; ++rank) {
    const RankOutcome& outcome = outcomes[rank];
    ASSERT_TRUE(outcome.status.ok()) << "rank " << rank << ": " << outcome.status;
    ASSERT_EQ(outcome.step.losses, reference->losses) << "rank " << rank;
    EXPECT_EQ(outcome.step.timeline.size(), schedule->ops[rank].size());
    for (const auto& [key, w1] : outcome.w1) {
      const auto [route, stage] = key;
      EXPECT_EQ(w1, reference->w1[route][stage])
          << "rank " << rank << " route " << route << " stage " << stage;
      EXPECT_EQ(outcome.w2.at(key), reference->w2[route][stage])
          << "rank " << rank << " route " << route << " stage " << stage;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, ExecutorEqualsSequentialTest,
    testing::Values(Case{"dualpipe", 2, 4}, Case{"dualpipe", 2, 10}, Case{"dualpipe", 4, 8},
                    Case{"dualpipe", 4, 20}, Case{"dualpipe", 8, 16}, Case{"dualpipe", 8, 24},
                    Case{"dualpipev", 1, 2}, Case{"dualpipev", 2, 4}, Case{"dualpipev", 3, 9},
                    Case{"dualpipev", 4, 8}, Case{"dualpipev", 4, 20}, Case{"1f1b", 2, 1},
                    Case{"1f1b", 2, 5}, Case{"1f1b", 4, 8}, Case{"1f1b", 8, 12}, Case{"zb1p", 2, 3},
                    Case{"zb1p", 4, 8}, Case{"zb1p", 8, 16}, Case{"interleaved1f1b", 2, 4},
                    Case{"interleaved1f1b", 4, 8}, Case{"interleaved1f1b", 8, 16},
                    Case{"zbv", 2, 4}, Case{"zbv", 4, 8}, Case{"zbv", 4, 11}),
    CaseName);

TEST(ExecutorTest, WrongScheduleIsInvalidArgumentBeforeAnythingRuns) {
  absl::StatusOr<Schedule> schedule = GenerateSchedule("1f1b", 2, 4);
  ASSERT_TRUE(schedule.ok());
  std::swap(schedule->ops[1][0], schedule->ops[1][1]);  // a backward before its forward
  MlpSpec spec;
  spec.num_stages = 2;
  const std::vector<RankOutcome> outcomes = RunPipelined(*schedule, spec);
  for (const RankOutcome& outcome : outcomes) {
    EXPECT_TRUE(absl::IsInvalidArgument(outcome.status)) << outcome.status;
  }
}

TEST(ExecutorTest, MismatchedStageSizesAreInvalidArgumentOnEveryRank) {
  absl::StatusOr<Schedule> schedule = GenerateSchedule("1f1b", 3, 3);
  ASSERT_TRUE(schedule.ok());
  std::vector<absl::Status> statuses = comm::RunLocalRanks(3, [&](comm::Communicator& comm) {
    MlpSpec spec;
    spec.num_stages = 3;
    if (comm.rank() == 2) spec.tokens = 5;  // takes 5 tokens, stage 1 sends 4
    MlpStage stage(spec, comm.rank(), 0);
    return Executor::Create(*schedule, {&stage}, &comm).status();
  });
  for (const absl::Status& status : statuses) {
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_NE(status.message().find("stage 1 (rank 1) outputs 128 bytes"), std::string::npos)
        << status;
  }
}

TEST(ExecutorTest, MissingOrForeignStageIsInvalidArgumentOnEveryRank) {
  absl::StatusOr<Schedule> schedule = GenerateSchedule("dualpipe", 2, 4);
  ASSERT_TRUE(schedule.ok());
  std::vector<absl::Status> statuses = comm::RunLocalRanks(2, [&](comm::Communicator& comm) {
    MlpSpec spec;
    spec.num_stages = 2;
    MlpStage a(spec, 0, 0), b(spec, 1, 0);
    // Rank 1 forgets its path-1 stage.
    std::vector<Stage*> stages = {&a, comm.rank() == 1 ? nullptr : &b};
    return Executor::Create(*schedule, stages, &comm).status();
  });
  EXPECT_TRUE(absl::IsInvalidArgument(statuses[0])) << statuses[0];
  EXPECT_TRUE(absl::IsInvalidArgument(statuses[1])) << statuses[1];
  EXPECT_NE(statuses[1].message().find("no stage"), std::string::npos) << statuses[1];
}

TEST(ExecutorTest, WrongInputSizeIsInvalidArgument) {
  absl::StatusOr<Schedule> schedule = GenerateSchedule("1f1b", 1, 2);
  ASSERT_TRUE(schedule.ok());
  std::vector<absl::Status> statuses = comm::RunLocalRanks(1, [&](comm::Communicator& comm) {
    MlpSpec spec;
    spec.num_stages = 1;
    MlpStage stage(spec, 0, 0);
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::Create(*schedule, {&stage}, &comm);
    if (!executor.ok()) return executor.status();
    std::vector<std::byte> small(3);
    std::vector<absl::Span<const std::byte>> inputs = {small, small};
    return (*executor)->Step(inputs).status();
  });
  EXPECT_TRUE(absl::IsInvalidArgument(statuses[0])) << statuses[0];
}

// A stage that fails its forward of one micro-batch: its rank stops mid-step.
class FailingStage : public MlpStage {
 public:
  FailingStage(const MlpSpec& spec, int stage, int fail_at, absl::Duration stall)
      : MlpStage(spec, stage, 0), fail_at_(fail_at), stall_(stall) {}
  absl::Status Forward(int microbatch, absl::Span<const std::byte> input,
                       absl::Span<std::byte> output) override {
    if (microbatch == fail_at_) {
      absl::SleepFor(stall_);
      return absl::InternalError("injected failure");
    }
    return MlpStage::Forward(microbatch, input, output);
  }

 private:
  int fail_at_;
  absl::Duration stall_;
};

// Runs 4-rank 1F1B where rank 2 fails at micro-batch 3 after `stall`; every other rank must
// return an error within the deadline.
std::vector<absl::Status> RunWithFault(absl::Duration stall, absl::Duration timeout) {
  absl::StatusOr<Schedule> schedule = GenerateSchedule("1f1b", 4, 8);
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  MlpSpec spec;
  spec.num_stages = 4;
  const std::vector<std::vector<std::byte>> inputs = internal::MlpInputBytes(spec, 8);
  std::vector<absl::Span<const std::byte>> spans(inputs.begin(), inputs.end());
  return comm::RunLocalRanks(4, [&](comm::Communicator& comm) {
    comm.set_timeout(timeout);
    std::unique_ptr<MlpStage> stage = comm.rank() == 2
                                          ? std::make_unique<FailingStage>(spec, 2, 3, stall)
                                          : std::make_unique<MlpStage>(spec, comm.rank(), 0);
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::Create(*schedule, {stage.get()}, &comm);
    if (!executor.ok()) return executor.status();
    return (*executor)->Step(spans).status();
  });
}

TEST(ExecutorTest, RankThatExitsMidStepMakesEveryOtherRankFail) {
  const absl::Time start = absl::Now();
  const std::vector<absl::Status> statuses = RunWithFault(absl::ZeroDuration(), absl::Seconds(5));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));  // peers learn at once that rank 2 left
  EXPECT_TRUE(absl::IsInternal(statuses[2])) << statuses[2];
  EXPECT_NE(statuses[2].message().find("rank 2, op F0.3"), std::string::npos) << statuses[2];
  for (int r : {0, 1, 3}) {
    EXPECT_TRUE(absl::IsUnavailable(statuses[r])) << "rank " << r << ": " << statuses[r];
  }
}

TEST(ExecutorTest, StalledRankMakesOthersFailWithinTheDeadline) {
  const absl::Time start = absl::Now();
  const std::vector<absl::Status> statuses =
      RunWithFault(absl::Seconds(2), absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  for (int r : {0, 1, 3}) {
    EXPECT_FALSE(statuses[r].ok()) << "rank " << r;
    // The waiting op and micro-batch are named.
    EXPECT_NE(statuses[r].message().find(absl::StrCat("rank ", r, ", op ")), std::string::npos)
        << statuses[r];
  }
  // The first rank to time out aborts the group; the others see that as UNAVAILABLE.
  EXPECT_TRUE(absl::IsDeadlineExceeded(statuses[0]) || absl::IsDeadlineExceeded(statuses[1]) ||
              absl::IsDeadlineExceeded(statuses[3]))
      << statuses[0] << " / " << statuses[1] << " / " << statuses[3];
}

TEST(ExecutorTest, TraceHasEveryOpOfTheStep) {
  absl::StatusOr<Schedule> schedule = GenerateSchedule("dualpipev", 2, 4);
  ASSERT_TRUE(schedule.ok());
  MlpSpec spec;
  spec.num_stages = 4;
  const std::vector<std::vector<std::byte>> inputs = internal::MlpInputBytes(spec, 4);
  std::vector<absl::Span<const std::byte>> spans(inputs.begin(), inputs.end());
  core::TraceRecorder trace;
  comm::RunLocalRanks(2, [&](comm::Communicator& comm) {
    const internal::HostedMlpStages stages =
        internal::MakeHostedStages(spec, *schedule, comm.rank());
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::Create(*schedule, stages.by_path, &comm, {.trace = &trace});
    if (!executor.ok()) return executor.status();
    return (*executor)->Step(spans).status();
  });
  int compute = 0;
  for (const core::TraceEvent& event : trace.events()) compute += event.category == "compute";
  EXPECT_EQ(compute, schedule->ops[0].size() + schedule->ops[1].size());
}

}  // namespace
}  // namespace dualpipe
