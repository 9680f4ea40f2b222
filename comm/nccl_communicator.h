// The nccl backend: one rank per GPU, device memory only. Built only with --config=cuda.
//
// Bootstrap: rank 0 makes the NCCL unique id and broadcasts it over any other communicator: the
// mpi backend for one process per GPU, or the local backend for several GPUs driven by threads
// of one process. Every call is enqueued on the communicator's own CUDA stream and the calling
// thread then polls the stream and ncclCommGetAsyncError until done or the deadline; on timeout
// or an asynchronous NCCL error the NCCL communicator is aborted (ncclCommAbort) and the call
// returns DEADLINE_EXCEEDED, or UNAVAILABLE for a remote failure, or INTERNAL.
//
// Ordering: the stream does not wait for the caller's streams. Work producing the inputs must be
// complete (e.g. cudaStreamSynchronize) before a call; outputs are complete when it returns.
// Tags are ignored: messages between two ranks match in the order they were posted.
#ifndef COMM_NCCL_COMMUNICATOR_H_
#define COMM_NCCL_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "comm/communicator.h"

namespace comm {

// Returns this rank's NCCL communicator over the ranks of `bootstrap` (same rank and size),
// using CUDA device `device`, which becomes the calling thread's current device. Collective over
// `bootstrap`, with its deadline for the broadcast and this call's timeout for NCCL's own
// initialization; the new communicator has `bootstrap`'s options. `bootstrap` is only used during
// the call. Errors: INVALID_ARGUMENT for a bad device, UNAVAILABLE without a GPU,
// DEADLINE_EXCEEDED if a rank does not join.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(Communicator& bootstrap,
                                                                     int device);

}  // namespace comm

#endif  // COMM_NCCL_COMMUNICATOR_H_
