// Builds a process's world communicator from how it was launched: mpirun (Open MPI), srun
// (Slurm) or directly (no launcher), and the backend the user asked for.
#ifndef COMM_BOOTSTRAP_H_
#define COMM_BOOTSTRAP_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "comm/communicator.h"

namespace comm {

enum class Launcher { kNone, kOpenMpi, kSlurm };

// Where this process sits in the job, as the launcher told it.
struct LaunchEnvironment {
  Launcher launcher = Launcher::kNone;
  int rank = 0;        // in the whole job
  int size = 1;        // processes in the job
  int local_rank = 0;  // on this node; picks the GPU
};

// Looks up an environment variable; null when unset.
using EnvLookup = std::function<const char*(const char*)>;

// Reads OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK} (mpirun), else SLURM_{PROCID,NTASKS,LOCALID}
// (srun), else reports no launcher (rank 0 of 1). Open MPI wins when both are set (mpirun inside
// a Slurm allocation). INVALID_ARGUMENT, naming the variable, when one is missing, not a number
// or out of range.
absl::StatusOr<LaunchEnvironment> ReadLaunchEnvironment(const EnvLookup& getenv);
// The same for this process's environment.
absl::StatusOr<LaunchEnvironment> ReadLaunchEnvironment();

enum class Backend {
  kAuto,   // mpi under a launcher, else local
  kLocal,  // this process alone: a local communicator of one rank
  kMpi,
  kNccl,  // one GPU per process (GPU local_rank % GPUs), NCCL id broadcast over mpi or local
};

// "auto", "local", "mpi" or "nccl"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Backend> ParseBackend(absl::string_view name);

// Returns this process's communicator over the whole job for `backend` (see Backend), with
// `options`. Collective over the job's processes. INVALID_ARGUMENT for bad options;
// FAILED_PRECONDITION for local under a multi-process launcher; UNIMPLEMENTED for nccl in a build
// without --config=cuda; else the backend's errors.
absl::StatusOr<std::unique_ptr<Communicator>> CreateWorldCommunicator(Backend backend,
                                                                      const CommOptions& options);
// The same with CommOptionsFromFlags() (a bad flag is the error returned).
absl::StatusOr<std::unique_ptr<Communicator>> CreateWorldCommunicator(Backend backend);

}  // namespace comm

#endif  // COMM_BOOTSTRAP_H_
