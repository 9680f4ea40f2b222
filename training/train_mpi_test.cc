// Runs under mpirun with 4 processes (comm/mpirun_test.sh): DualPipe over 2 pipeline ranks x 2
// expert-parallel ranks, one process each, trains the tiny MoE model of trainer_test.cc for a
// few steps (20). Then rank 0 trains the same config on 4 ranks as threads in its own process: the
// losses and the checkpointed model files of the two runs are equal, bit for bit (every sum
// across ranks is over two ranks, so the order of the MPI and thread reductions does not matter;
// clipping, whose norm sums over all four, is off). With ZeRO-1 over 2 data-parallel processes
// (DualPipe over 2 pipeline ranks x 2 replicas), the same equality holds against threads without
// ZeRO-1.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "comm/bootstrap.h"
#include "comm/local_communicator.h"
#include "gtest/gtest.h"
#include "training/checkpoint.h"
#include "training/config.h"
#include "training/trainer.h"

namespace training {
namespace {
namespace fs = std::filesystem;

// The tests' tiny MoE model, with a validation split, a few more steps and larger micro-batches.
const std::vector<std::string> kOverrides = {"parallel.schedule=dualpipe",
                                             "parallel.pp=2",
                                             "parallel.ep=2",
                                             "parallel.microbatches=4",
                                             "parallel.sequences_per_microbatch=4",
                                             "data.validation_fraction=0.3",
                                             "logging.eval_microbatches=4",
                                             "logging.expert_loads_every=10",
                                             "steps=20",
                                             "seed=11"};

std::string Base() {
  const char* base = std::getenv("TEST_TMPDIR");
  return base != nullptr ? base : "/tmp";
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// This process's part of an mpi run of the test config under Base()/`name`: the world (of 4),
// the config, the data (world rank 0 builds the token cache, then the others read it, as the
// train binary does) and trainer options.
struct MpiRun {
  std::unique_ptr<comm::Communicator> world;
  int rank = 0;
  TrainingConfig config;
  PreparedData data;
  TrainerOptions options;
};

// `layout` overrides kOverrides.
void StartMpiRun(absl::Duration timeout, const std::string& name, MpiRun* run,
                 const std::vector<std::string>& layout = {}) {
  comm::CommOptions comm_options;
  comm_options.timeout = timeout;
  absl::StatusOr<std::unique_ptr<comm::Communicator>> world =
      comm::CreateWorldCommunicator(comm::Backend::kMpi, comm_options);
  ASSERT_TRUE(world.ok()) << world.status();
  run->world = *std::move(world);
  ASSERT_EQ(run->world->size(), 4) << "run me with mpirun -np 4";
  run->rank = run->world->rank();
  std::vector<std::string> overrides = kOverrides;
  overrides.insert(overrides.end(), layout.begin(), layout.end());
  absl::StatusOr<TrainingConfig> config =
      LoadTrainingConfig("training/testdata/tiny_moe.textproto", overrides);
  ASSERT_TRUE(config.ok()) << config.status();
  run->config = *config;
  run->options.output_dir = absl::StrCat(Base(), "/", name);
  run->options.peak_gflops = 1;
  absl::StatusOr<PreparedData> data;
  if (run->rank == 0) data = PrepareData(run->config, run->options.output_dir);
  ASSERT_TRUE(run->world->Barrier().ok());
  if (run->rank != 0) data = PrepareData(run->config, run->options.output_dir);
  ASSERT_TRUE(data.ok()) << data.status();
  run->data = *std::move(data);
}

// Trains `run` under mpirun, and on rank 0 the same config with `threaded_config` on 4 threads:
// equal losses, validation loss, checkpoint files and expert loads, bit for bit.
void ExpectEqualsThreadedRun(MpiRun& run, const TrainingConfig& threaded_config) {
  absl::StatusOr<TrainSummary> mpi = TrainRank(run.config, run.options, run.data, *run.world);
  ASSERT_TRUE(mpi.ok()) << mpi.status();
  ASSERT_EQ(mpi->losses.size(), 20u);
  // It trains: the last five steps' mean loss is well below the first five's.
  float first = 0, last = 0;
  for (int i = 0; i < 5; ++i) {
    first += mpi->losses[i] / 5;
    last += mpi->losses[15 + i] / 5;
  }
  EXPECT_LT(last, first - 0.2) << "first 5 steps " << first << ", last 5 " << last;
  EXPECT_GT(mpi->val_loss, 0);

  if (run.rank == 0) {
    TrainerOptions threaded_options = run.options;
    threaded_options.output_dir = run.options.output_dir + "-threads";
    std::mutex mu;
    TrainSummary threaded;
    const std::vector<absl::Status> statuses =
        comm::RunLocalRanks(4, run.world->options(), [&](comm::Communicator& comm) -> absl::Status {
          absl::StatusOr<TrainSummary> summary =
              TrainRank(threaded_config, threaded_options, run.data, comm);
          if (!summary.ok()) return summary.status();
          std::lock_guard<std::mutex> lock(mu);
          if (comm.rank() == 0) threaded = *std::move(summary);
          return absl::OkStatus();
        });
    for (const absl::Status& status : statuses) ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(mpi->losses, threaded.losses);
    EXPECT_EQ(mpi->val_loss, threaded.val_loss);
    // The checkpoints' model and optimizer files and trainer state are the same bytes.
    const fs::path a = mpi->checkpoint, b = threaded.checkpoint;
    int compared = 0;
    for (const fs::directory_entry& entry : fs::directory_iterator(a)) {
      const std::string name = entry.path().filename().string();
      if (name == "config.textproto") continue;  // names no directory; equal too, but skip
      EXPECT_TRUE(fs::exists(b / name)) << name;
      EXPECT_TRUE(ReadFile(entry.path()) == ReadFile(b / name)) << name << " differs";
      ++compared;
    }
    // Model and optimizer files of 2 stages x ep, index, state, model, tokenizer.
    EXPECT_EQ(compared, 4 * run.config.parallel().ep() + 4);
    EXPECT_EQ(ReadFile(fs::path(run.options.output_dir) / "expert_loads/step-00000010.csv"),
              ReadFile(fs::path(threaded_options.output_dir) / "expert_loads/step-00000010.csv"));
  }
  // The other ranks wait here while rank 0 runs the threaded copy.
  EXPECT_TRUE(run.world->Barrier().ok());
}

TEST(TrainMpiTest, EqualsThreadedRun) {
  MpiRun run;
  ASSERT_NO_FATAL_FAILURE(StartMpiRun(absl::Seconds(60), "mpi", &run));
  ExpectEqualsThreadedRun(run, run.config);
}

// ZeRO-1's all-gather of the parameters and its gather of AdamW's moments into the checkpoint,
// over MPI: the same as threads that hold the whole optimizer state on every replica.
TEST(TrainMpiTest, ZeroOneEqualsThreadedRun) {
  MpiRun run;
  ASSERT_NO_FATAL_FAILURE(StartMpiRun(absl::Seconds(60), "mpi_zero1", &run,
                                      {"parallel.ep=1", "parallel.dp=2", "parallel.zero1=true"}));
  TrainingConfig threaded = run.config;
  threaded.mutable_parallel()->set_zero1(false);
  ExpectEqualsThreadedRun(run, threaded);
}

// World rank 1 fails in the middle of step 2 and leaves (it stops communicating and finalizes MPI;
// a process that dies outright makes mpirun end the whole job at once): every other rank returns
// an error within two communication deadlines (its wait, then the world barrier), naming world
// rank 1, never hangs.
TEST(TrainMpiTest, DyingRankIsReported) {
  MpiRun run;
  ASSERT_NO_FATAL_FAILURE(StartMpiRun(absl::Seconds(3), "dying", &run));
  const int rank = run.rank;
  run.options.fail_rank = 1;
  run.options.fail_at_step = 2;
  const absl::Time start = absl::Now();
  absl::StatusOr<TrainSummary> summary = TrainRank(run.config, run.options, run.data, *run.world);
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(summary.ok());
  std::printf("rank %d after %s: %s\n", rank, absl::FormatDuration(took).c_str(),
              summary.status().ToString().c_str());
  if (rank == 1) {
    EXPECT_TRUE(absl::StrContains(summary.status().message(), "injected failure in step 2"));
    return;  // leaves without a word (MPI_Finalize at exit)
  }
  // A wait on the lost rank (or on a rank that gave up because of it), then the world barrier,
  // whose roll call names the lost world rank.
  EXPECT_LT(took, absl::Seconds(3 * 3 + 10));
  EXPECT_TRUE(absl::StrContains(summary.status().message(), "rank 1 did not arrive"))
      << summary.status();
}

}  // namespace
}  // namespace training
