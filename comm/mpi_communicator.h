// The mpi backend: one rank per Open MPI process, on one machine or many, launched with mpirun
// or srun. MPI runs with MPI_THREAD_MULTIPLE, so a communication thread may run beside compute
// threads (each communicator still used by one thread at a time). Host memory only (Debian's
// Open MPI is not CUDA-aware).
//
// Every call is issued non-blocking (MPI_Isend, MPI_Iallreduce, ...) and completed by polling
// MPI_Testall against the deadline, so no call can hang. Open MPI 4.1 cannot tell that a peer is
// gone, so a missing or exited peer shows as DEADLINE_EXCEEDED. A collective that timed out
// cannot be cancelled: its communicator is aborted and leaked, and MPI may still write into that
// call's output buffers if the missing peers join later, so callers should keep them alive or
// exit.
#ifndef COMM_MPI_COMMUNICATOR_H_
#define COMM_MPI_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "comm/communicator.h"

namespace comm {

// Returns a communicator over all processes of the job (a duplicate of MPI_COMM_WORLD). The first
// call initializes MPI with MPI_THREAD_MULTIPLE and registers MPI_Finalize to run at exit.
// Collective over all processes. Errors: INVALID_ARGUMENT for bad options, UNAVAILABLE if MPI
// cannot start, FAILED_PRECONDITION if MPI was already initialized (or comes up) without
// MPI_THREAD_MULTIPLE. Thread-safe.
absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiWorld(const CommOptions& options);
// The same with CommOptionsFromFlags() (a bad flag is the error returned).
absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiWorld();

}  // namespace comm

#endif  // COMM_MPI_COMMUNICATOR_H_
