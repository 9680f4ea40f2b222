// A backend-independent test suite: each check runs one call of the Communicator interface on
// data whose result is known exactly and returns OK or an error naming the first wrong element.
// Every rank of the communicator must run the same checks in the same order. Used by the tests of
// the local (threads), mpi (processes) and nccl (device memory) backends.
#ifndef COMM_INTERNAL_CONFORMANCE_H_
#define COMM_INTERNAL_CONFORMANCE_H_

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "comm/buffer.h"
#include "comm/communicator.h"

namespace comm::internal {

// Where the checks put their buffers: host memory, or device memory for the NCCL backend.
class TestMemory {
 public:
  virtual ~TestMemory() = default;
  virtual core::Device kind() const = 0;
  // Returns `bytes` of memory of kind(), zero-filled; ownership stays with this object, which
  // frees everything it allocated when destroyed.
  virtual void* Allocate(size_t bytes) = 0;
  virtual void CopyIn(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void CopyOut(void* host_dst, const void* src, size_t bytes) = 0;
};

// Host memory from the heap.
class HostTestMemory : public TestMemory {
 public:
  core::Device kind() const override { return core::Device::kHost; }
  void* Allocate(size_t bytes) override;
  void CopyIn(void* dst, const void* host_src, size_t bytes) override;
  void CopyOut(void* host_dst, const void* src, size_t bytes) override;

 private:
  std::vector<std::vector<char>> blocks_;
};

// Send/Recv around a ring, then a BatchP2P that exchanges with both neighbours at once.
absl::Status CheckPointToPoint(Communicator& comm, TestMemory& memory);
// StartBatchP2P: every rank posts its receives first (three messages from the previous rank with
// one tag, one from the next with another), then its sends, waits the receives in the order they
// were posted and the sends last; same-tag messages arrive in order.
absl::Status CheckNonBlockingP2P(Communicator& comm, TestMemory& memory);
// AllReduce sum and max for every dtype, out of place and in place; ReduceScatter of the same
// input with uneven parts (one empty).
absl::Status CheckAllReduce(Communicator& comm, TestMemory& memory);
// AllGather of i32 and bf16.
absl::Status CheckAllGather(Communicator& comm, TestMemory& memory);
// AllToAll with different counts for every (sender, receiver) pair, zero counts included; then
// two StartAllToAll in flight at once.
absl::Status CheckAllToAll(Communicator& comm, TestMemory& memory);
// Broadcast from every root.
absl::Status CheckBroadcast(Communicator& comm, TestMemory& memory);
// Barrier, then Split into even and odd ranks (reverse order by key) and an AllReduce in each.
absl::Status CheckBarrierAndSplit(Communicator& comm, TestMemory& memory);
// Ranks that call mismatched collectives (rank 0 one call, the others another: different kinds,
// Broadcast roots, reduce ops, counts, dtypes, AllToAll counts) all get INVALID_ARGUMENT naming
// both calls, with no output buffer touched; a receive that does not fit its message (shorter,
// longer, another element size) is INVALID_ARGUMENT on the receiver. After each, the communicator
// still works. Needs checked mode on backends where it is optional (mpi); OK at once on 1 rank.
absl::Status CheckMismatchesAreCaught(Communicator& comm, TestMemory& memory);

}  // namespace comm::internal

#endif  // COMM_INTERNAL_CONFORMANCE_H_
