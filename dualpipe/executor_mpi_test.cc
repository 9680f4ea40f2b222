// Runs under mpirun (comm/mpirun_test.sh): every process is one pipeline rank. For each schedule
// that fits the number of processes, the pipelined step's losses and this rank's stage gradients
// equal, bit for bit, a sequential run of the whole model that each process computes itself.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "dualpipe/executor.h"
#include "dualpipe/generate.h"
#include "dualpipe/internal/mlp_stage.h"
#include "dualpipe/placement.h"
#include "gtest/gtest.h"

namespace dualpipe {
namespace {

using internal::MlpSpec;
using internal::MlpStage;

class ExecutorMpiTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<comm::Communicator>> world = comm::CreateMpiWorld();
    ASSERT_TRUE(world.ok()) << world.status();
    comm_ = *std::move(world);
    comm_->set_timeout(absl::Seconds(30));
  }
  std::unique_ptr<comm::Communicator> comm_;
};

TEST_P(ExecutorMpiTest, EqualsSequential) {
  const int ranks = comm_->size();
  const int microbatches = 4 * ranks;
  absl::StatusOr<Schedule> schedule = GenerateSchedule(GetParam(), ranks, microbatches);
  if (!schedule.ok()) GTEST_SKIP() << schedule.status();  // e.g. dualpipe on an odd count
  MlpSpec spec;
  spec.num_stages = 0;
  for (const Route& route : schedule->routes) {
    spec.num_stages = std::max(spec.num_stages, static_cast<int>(route.hops.size()));
  }
  std::vector<internal::RouteMicrobatches> routes;
  for (int r = 0; r < static_cast<int>(schedule->routes.size()); ++r) {
    routes.push_back({FirstMicrobatch(*schedule, r), schedule->routes[r].num_microbatches});
  }
  absl::StatusOr<internal::SequentialResult> reference = internal::RunSequential(spec, routes);
  ASSERT_TRUE(reference.ok()) << reference.status();

  const std::vector<std::vector<std::byte>> inputs = internal::MlpInputBytes(spec, microbatches);
  std::vector<absl::Span<const std::byte>> spans(inputs.begin(), inputs.end());
  const internal::HostedMlpStages stages =
      internal::MakeHostedStages(spec, *schedule, comm_->rank());
  const std::vector<HostedStage> hosted = HostedStages(*schedule, comm_->rank());
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(*schedule, stages.by_path, comm_.get());
  ASSERT_TRUE(executor.ok()) << executor.status();
  absl::StatusOr<StepResult> step = (*executor)->Step(spans);
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_EQ(step->losses, reference->losses);
  for (size_t i = 0; i < hosted.size(); ++i) {
    EXPECT_EQ(stages.owned[i]->grad_w1(), reference->w1[hosted[i].route][hosted[i].stage]);
    EXPECT_EQ(stages.owned[i]->grad_w2(), reference->w2[hosted[i].route][hosted[i].stage]);
  }
}

INSTANTIATE_TEST_SUITE_P(Schedules, ExecutorMpiTest,
                         testing::Values("dualpipe", "dualpipev", "1f1b", "zb1p", "interleaved1f1b",
                                         "zbv"));

}  // namespace
}  // namespace dualpipe
