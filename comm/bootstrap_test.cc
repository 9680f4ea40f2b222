// Also run under mpirun by bootstrap_mpi_test: CreateWorld must then give the mpi backend.
#include "comm/bootstrap.h"

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace comm {
namespace {

EnvLookup FakeEnv(const std::map<std::string, std::string>& values) {
  return [values](const char* name) -> const char* {
    const auto it = values.find(name);
    return it == values.end() ? nullptr : it->second.c_str();
  };
}

TEST(ReadLaunchEnvironmentTest, NoLauncherIsOneRank) {
  const absl::StatusOr<LaunchEnvironment> env = ReadLaunchEnvironment(FakeEnv({}));
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->launcher, Launcher::kNone);
  EXPECT_EQ(env->rank, 0);
  EXPECT_EQ(env->size, 1);
}

TEST(ReadLaunchEnvironmentTest, OpenMpiWinsOverSlurm) {
  const absl::StatusOr<LaunchEnvironment> env = ReadLaunchEnvironment(FakeEnv({
      {"OMPI_COMM_WORLD_RANK", "5"},
      {"OMPI_COMM_WORLD_SIZE", "8"},
      {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
      {"SLURM_PROCID", "0"},
      {"SLURM_NTASKS", "2"},
  }));
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->launcher, Launcher::kOpenMpi);
  EXPECT_EQ(env->rank, 5);
  EXPECT_EQ(env->size, 8);
  EXPECT_EQ(env->local_rank, 1);
}

TEST(ReadLaunchEnvironmentTest, Slurm) {
  const absl::StatusOr<LaunchEnvironment> env = ReadLaunchEnvironment(FakeEnv({
      {"SLURM_PROCID", "3"},
      {"SLURM_NTASKS", "4"},
      {"SLURM_LOCALID", "3"},
  }));
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->launcher, Launcher::kSlurm);
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->size, 4);
  EXPECT_EQ(env->local_rank, 3);
}

TEST(ReadLaunchEnvironmentTest, BadValuesNameTheVariable) {
  const absl::StatusOr<LaunchEnvironment> bad_rank = ReadLaunchEnvironment(FakeEnv({
      {"OMPI_COMM_WORLD_RANK", "4"},
      {"OMPI_COMM_WORLD_SIZE", "4"},
      {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
  }));
  EXPECT_TRUE(absl::IsInvalidArgument(bad_rank.status()));
  EXPECT_NE(bad_rank.status().message().find("OMPI_COMM_WORLD_RANK"), std::string::npos);
  const absl::StatusOr<LaunchEnvironment> missing = ReadLaunchEnvironment(FakeEnv({
      {"SLURM_PROCID", "0"},
      {"SLURM_NTASKS", "x"},
  }));
  EXPECT_TRUE(absl::IsInvalidArgument(missing.status()));
  EXPECT_NE(missing.status().message().find("SLURM_NTASKS"), std::string::npos);
}

TEST(ParseBackendTest, NamesAndErrors) {
  EXPECT_EQ(*ParseBackend("auto"), Backend::kAuto);
  EXPECT_EQ(*ParseBackend("local"), Backend::kLocal);
  EXPECT_EQ(*ParseBackend("mpi"), Backend::kMpi);
  EXPECT_EQ(*ParseBackend("nccl"), Backend::kNccl);
  EXPECT_TRUE(absl::IsInvalidArgument(ParseBackend("gloo").status()));
}

TEST(CreateWorldCommunicatorTest, AutoFollowsTheLauncher) {
  const absl::StatusOr<LaunchEnvironment> env = ReadLaunchEnvironment();
  ASSERT_TRUE(env.ok()) << env.status();
  absl::StatusOr<std::unique_ptr<Communicator>> world = CreateWorldCommunicator(Backend::kAuto);
  ASSERT_TRUE(world.ok()) << world.status();
  EXPECT_EQ((*world)->backend(), env->launcher == Launcher::kNone ? "local" : "mpi");
  EXPECT_EQ((*world)->size(), env->size);
  EXPECT_EQ((*world)->rank(), env->rank);
  std::vector<int32_t> ranks(1, (*world)->rank());
  ASSERT_TRUE(
      (*world)
          ->AllReduce(ConstHostBuffer<int32_t>(ranks), HostBuffer<int32_t>(ranks), ReduceOp::kSum)
          .ok());
  EXPECT_EQ(ranks[0], env->size * (env->size - 1) / 2);
  const absl::StatusOr<std::unique_ptr<Communicator>> local =
      CreateWorldCommunicator(Backend::kLocal);
  EXPECT_EQ(local.ok(), env->size == 1) << local.status();
}

}  // namespace
}  // namespace comm
