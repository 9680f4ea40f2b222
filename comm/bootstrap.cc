#include "comm/bootstrap.h"

#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "comm/local_communicator.h"
#include "comm/mpi_communicator.h"
#include "core/status_macros.h"
#ifdef COMM_WITH_NCCL
#include <cuda_runtime_api.h>

#include "comm/nccl_communicator.h"
#endif

namespace comm {
namespace {

// The value of `name` as a number in [min, max).
absl::StatusOr<int> ReadInt(const EnvLookup& getenv, const char* name, int min, int max) {
  const char* text = getenv(name);
  if (text == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, " is not set"));
  }
  int value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < min || value >= max) {
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, "='", text,
                                                   "' is not a number in [", min, ", ", max, ")"));
  }
  return value;
}

absl::StatusOr<LaunchEnvironment> ReadVariables(const EnvLookup& getenv, Launcher launcher,
                                                const char* rank, const char* size,
                                                const char* local_rank) {
  LaunchEnvironment env;
  env.launcher = launcher;
  ASSIGN_OR_RETURN(env.size, ReadInt(getenv, size, 1, 1 << 24));
  ASSIGN_OR_RETURN(env.rank, ReadInt(getenv, rank, 0, env.size));
  ASSIGN_OR_RETURN(env.local_rank, ReadInt(getenv, local_rank, 0, env.size));
  return env;
}

// The local communicator of a process that is the whole job.
std::unique_ptr<Communicator> SingleProcess(const CommOptions& options) {
  return std::move(CreateLocalGroup(1, options).front());
}

// mpi under a launcher, local otherwise.
absl::StatusOr<std::unique_ptr<Communicator>> CpuWorld(const LaunchEnvironment& env,
                                                       const CommOptions& options) {
  if (env.launcher == Launcher::kNone) return SingleProcess(options);
  return CreateMpiWorld(options);
}

// The nccl communicator takes its options from the bootstrap one.
absl::StatusOr<std::unique_ptr<Communicator>> NcclWorld(const LaunchEnvironment& env,
                                                        const CommOptions& options) {
#ifdef COMM_WITH_NCCL
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    return absl::UnavailableError("the nccl backend needs a CUDA GPU; none is visible");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Communicator> bootstrap, CpuWorld(env, options));
  return CreateNcclCommunicator(*bootstrap, env.local_rank % devices);
#else
  (void)env;
  (void)options;
  return absl::UnimplementedError("the nccl backend needs a build with --config=cuda");
#endif
}

}  // namespace

absl::StatusOr<LaunchEnvironment> ReadLaunchEnvironment(const EnvLookup& getenv) {
  if (getenv("OMPI_COMM_WORLD_SIZE") != nullptr) {
    return ReadVariables(getenv, Launcher::kOpenMpi, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                         "OMPI_COMM_WORLD_LOCAL_RANK");
  }
  if (getenv("SLURM_NTASKS") != nullptr && getenv("SLURM_PROCID") != nullptr) {
    return ReadVariables(getenv, Launcher::kSlurm, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID");
  }
  return LaunchEnvironment{};
}

absl::StatusOr<LaunchEnvironment> ReadLaunchEnvironment() {
  return ReadLaunchEnvironment([](const char* name) { return std::getenv(name); });
}

absl::StatusOr<Backend> ParseBackend(absl::string_view name) {
  if (name == "auto") return Backend::kAuto;
  if (name == "local") return Backend::kLocal;
  if (name == "mpi") return Backend::kMpi;
  if (name == "nccl") return Backend::kNccl;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend '", name, "': expected auto, local, mpi or nccl"));
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateWorldCommunicator(Backend backend,
                                                                      const CommOptions& options) {
  RETURN_IF_ERROR(ValidateCommOptions(options));
  ASSIGN_OR_RETURN(const LaunchEnvironment env, ReadLaunchEnvironment());
  switch (backend) {
    case Backend::kAuto:
      return CpuWorld(env, options);
    case Backend::kLocal:
      if (env.size > 1) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the local backend runs in one process, but the launcher started ", env.size));
      }
      return SingleProcess(options);
    case Backend::kMpi:
      return CreateMpiWorld(options);
    case Backend::kNccl:
      return NcclWorld(env, options);
  }
  return absl::InvalidArgumentError("unknown backend");
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateWorldCommunicator(Backend backend) {
  ASSIGN_OR_RETURN(const CommOptions options, CommOptionsFromFlags());
  return CreateWorldCommunicator(backend, options);
}

}  // namespace comm
