// The communicator interface shared by every backend (local threads, MPI processes, NCCL GPUs).
//
// A Communicator is one rank's handle on a group of `size()` ranks. Collective calls must be made
// by every rank of the group in the same order. Every blocking call waits at most `timeout()`
// (CommOptions, given at construction) and then returns DEADLINE_EXCEEDED; a peer known to have
// left returns UNAVAILABLE; a backend call that failed and left the backend's state unknown
// returns INTERNAL. After any of these the communicator is aborted: every later call returns
// FAILED_PRECONDITION, and the caller should rebuild its groups.
//
// Argument errors (bad peer, unsupported memory, and calls that do not match across ranks:
// another collective, root, reduce op, count or dtype on another rank, a message that does not
// fit its receive) return INVALID_ARGUMENT and leave the communicator usable.
//
// Thread-safety: one Communicator is used by one thread at a time. Distinct communicators (other
// ranks, or groups made by Split) may be used concurrently from different threads.
#ifndef COMM_COMMUNICATOR_H_
#define COMM_COMMUNICATOR_H_

#include <cstddef>
#include <memory>
#include <optional>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "comm/buffer.h"

// The flags behind CommOptionsFromFlags (see CommOptions).
ABSL_DECLARE_FLAG(absl::Duration, comm_timeout);
ABSL_DECLARE_FLAG(bool, comm_checked);

namespace comm {

// Whether checked mode is on by default: in builds with DCHECKs (no NDEBUG: the default build,
// -c dbg, tests), not under -c opt.
#ifdef NDEBUG
inline constexpr bool kCheckedByDefault = false;
#else
inline constexpr bool kCheckedByDefault = true;
#endif

// How a communicator behaves, fixed at construction (Split's groups inherit it).
struct CommOptions {
  // The longest a blocking call, or a Request's Wait, may take before DEADLINE_EXCEEDED. > 0.
  absl::Duration timeout = absl::Seconds(60);
  // Checked mode: before each collective the ranks compare their calls (kind, root, reduce op,
  // count, dtype; AllToAll's per-pair counts), so that a mismatch is INVALID_ARGUMENT on every
  // rank, naming both calls, before any buffer is touched. Costs one small all-gather per
  // collective on the mpi backend; the local backend always compares (it costs nothing there);
  // the nccl backend does not compare yet.
  bool checked = kCheckedByDefault;
};

// OK if `options` are usable (timeout > 0), else INVALID_ARGUMENT naming the bad field.
absl::Status ValidateCommOptions(const CommOptions& options);

// CommOptions from --comm_timeout (default 60s) and --comm_checked (default kCheckedByDefault).
// INVALID_ARGUMENT naming the flag when a value is bad. Binaries call it after parsing flags and
// pass the result to the function that makes their communicator.
absl::StatusOr<CommOptions> CommOptionsFromFlags();

// CommOptionsFromFlags().status(), for binaries that let the communicator read the flags itself.
absl::Status ValidateCommFlags();

class Communicator;

// A started non-blocking operation (Communicator::StartBatchP2P). The buffers it names must stay
// valid, and those it sends unchanged, until Wait returns or the request is destroyed.
//
// Wait blocks until every send and receive of the batch has completed, for at most the
// communicator's timeout counted from the call to Wait, and then returns DEADLINE_EXCEEDED naming
// the peer and tag it waited for; a peer known to have left gives UNAVAILABLE. Either aborts the
// communicator, as a blocking call would. Destroying a request that was not waited withdraws what
// no peer has started to read or write and waits for copies in progress, so no peer touches the
// buffers afterwards.
//
// A request must not outlive its communicator and is used by the thread that uses it.
class Request {
 public:
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  virtual ~Request() = default;

  // The batch's outcome; later calls return the first call's status without waiting again.
  absl::Status Wait();

 protected:
  explicit Request(Communicator* comm) : comm_(comm) {}
  // Backend part of Wait: completes the batch by `deadline`.
  virtual absl::Status DoWait(absl::Time deadline) = 0;

 private:
  Communicator* comm_;
  std::optional<absl::Status> result_;
};

class Communicator {
 public:
  // Point-to-point tags are in [0, kMaxTag]; the two above it, up to 32767 (the least upper bound
  // MPI guarantees), are StartAllToAll's and the mpi backend's barrier's own.
  static constexpr int kMaxTag = 32765;
  static constexpr int kAllToAllTag = kMaxTag + 1;
  static constexpr int kBarrierTag = kMaxTag + 2;

  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  virtual ~Communicator() = default;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // "local", "mpi" or "nccl".
  virtual absl::string_view backend() const = 0;
  // Whether buffers in memory of `device` are accepted.
  virtual bool Supports(core::Device device) const = 0;

  const CommOptions& options() const { return options_; }
  // The time each blocking call may take (options().timeout). Precondition for set_timeout:
  // timeout > 0; it changes this communicator only, not groups already split from it.
  absl::Duration timeout() const { return options_.timeout; }
  void set_timeout(absl::Duration timeout);
  // Whether collectives compare the ranks' calls first (options().checked).
  bool checked() const { return options_.checked; }

  // OK until a call failed with DEADLINE_EXCEEDED, UNAVAILABLE or INTERNAL; then that error.
  const absl::Status& aborted() const { return aborted_; }

  // Sends `buffer` to `peer`; returns when the buffer may be reused. The receive on `peer` must
  // name this rank, the same tag, dtype and count. Messages between two ranks with the same tag
  // arrive in order. The NCCL backend ignores tags.
  absl::Status Send(ConstBuffer buffer, int peer, int tag = 0);
  // Receives into `buffer` from `peer` (see Send).
  absl::Status Recv(Buffer buffer, int peer, int tag = 0);
  // Posts all sends and receives together and returns when all have completed, so that pairs of
  // ranks may exchange in both directions without deadlock (like batch_isend_irecv).
  absl::Status BatchP2P(absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs);
  // Non-blocking BatchP2P: posts the sends and receives and returns at once; the request's Wait
  // completes them (see Request). Receives posted early match sends that peers start later; on
  // the local and mpi backends the sends of a request never wait for the receives of another, so
  // a rank may post all the receives of a step up front. Argument errors are returned here, as
  // BatchP2P returns them, and nothing is posted.
  absl::StatusOr<std::unique_ptr<Request>> StartBatchP2P(absl::Span<const SendOp> sends,
                                                         absl::Span<const RecvOp> recvs);

  // Element-wise reduction of every rank's `input` into every rank's `output`. Same count and
  // dtype on both and on every rank; `output` may equal `input` (in place), else no overlap.
  absl::Status AllReduce(ConstBuffer input, Buffer output, ReduceOp op);
  // The reduction of AllReduce, each rank keeping its part: `input` holds counts[p] elements for
  // each rank p in rank order (same counts, dtype and op on every rank), and `output`
  // (counts[rank()] elements, not overlapping `input`) receives the element-wise reduction of
  // every rank's part for this rank. Element for element the same values as AllReduce on the
  // local backend (reduced in rank order); on mpi, MPI's algorithm decides the order.
  absl::Status ReduceScatter(ConstBuffer input, Buffer output, absl::Span<const size_t> counts,
                             ReduceOp op);
  // output[r * input.count ...] = rank r's input. output.count == size() * input.count.
  absl::Status AllGather(ConstBuffer input, Buffer output);
  // `input` holds send_counts[p] elements for each peer p in rank order; `output` receives
  // recv_counts[p] elements from each p in rank order. send_counts[p] here must equal
  // recv_counts[this rank] on p. Both spans have size() entries; the sums must fit the buffers.
  absl::Status AllToAll(ConstBuffer input, absl::Span<const size_t> send_counts, Buffer output,
                        absl::Span<const size_t> recv_counts);
  // Non-blocking AllToAll: the same arguments, checked the same way here; the request's Wait
  // completes it (see Request). It is one point-to-point batch on kAllToAllTag (this rank's own
  // share included), so the ranks must start the all-to-alls of a communicator in the same order;
  // a count that disagrees with the peer's is the point-to-point error at Wait, as checked mode is
  // not consulted. On the local and mpi backends the exchange overlaps what the caller computes
  // before it waits; on nccl it runs at Wait.
  absl::StatusOr<std::unique_ptr<Request>> StartAllToAll(ConstBuffer input,
                                                         absl::Span<const size_t> send_counts,
                                                         Buffer output,
                                                         absl::Span<const size_t> recv_counts);
  // `buffer` on every rank takes the value of `buffer` on `root`.
  absl::Status Broadcast(Buffer buffer, int root);
  // Returns once every rank has entered the barrier. When ranks do not come, the error names them
  // where the backend can: the local backend names ranks that left; the mpi backend, unchecked,
  // names those that did not arrive within the timeout (rank 0 takes the roll; the others wait for
  // its answer up to 1.5 timeouts).
  absl::Status Barrier();

  // Collective: splits the group into one group per distinct `color` (>= 0); within a group the
  // ranks are ordered by (key, old rank). Returns this rank's new communicator (owned by the
  // caller, same backend and options), which outlives or may be destroyed before this one.
  absl::StatusOr<std::unique_ptr<Communicator>> Split(int color, int key);

 protected:
  // Preconditions: 0 <= rank < size; ValidateCommOptions(options) is OK.
  Communicator(int rank, int size, const CommOptions& options);

  // Backend implementations. Arguments are already validated: peers and roots in range, dtypes
  // and local counts consistent, memory kinds supported, communicator not aborted.
  virtual absl::Status DoBatchP2P(absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs,
                                  absl::Time deadline) = 0;
  // Posts a batch without waiting. The default defers the whole batch to Wait (a blocking
  // DoBatchP2P then), for backends that cannot post early; local and mpi override it.
  virtual std::unique_ptr<Request> DoStartBatchP2P(absl::Span<const SendOp> sends,
                                                   absl::Span<const RecvOp> recvs);
  virtual absl::Status DoAllReduce(ConstBuffer input, Buffer output, ReduceOp op,
                                   absl::Time deadline) = 0;
  virtual absl::Status DoReduceScatter(ConstBuffer input, Buffer output,
                                       absl::Span<const size_t> counts, ReduceOp op,
                                       absl::Time deadline) = 0;
  virtual absl::Status DoAllGather(ConstBuffer input, Buffer output, absl::Time deadline) = 0;
  virtual absl::Status DoAllToAll(ConstBuffer input, absl::Span<const size_t> send_counts,
                                  Buffer output, absl::Span<const size_t> recv_counts,
                                  absl::Time deadline) = 0;
  virtual absl::Status DoBroadcast(Buffer buffer, int root, absl::Time deadline) = 0;
  virtual absl::Status DoBarrier(absl::Time deadline) = 0;
  virtual absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key,
                                                                absl::Time deadline) = 0;
  // Called once when the communicator becomes aborted, to release what the backend can.
  virtual void OnAbort() {}

 private:
  friend class Request;

  // The checks AllToAll and StartAllToAll share.
  absl::Status CheckAllToAll(ConstBuffer input, absl::Span<const size_t> send_counts, Buffer output,
                             absl::Span<const size_t> recv_counts) const;
  // The checks StartBatchP2P and BatchP2P share.
  absl::Status CheckBatch(absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs) const;
  absl::Status CheckNotAborted() const;
  absl::Status CheckUsable(ConstBuffer buffer, absl::string_view what) const;
  absl::Status CheckTag(int tag) const;
  absl::Status CheckPeer(int peer, absl::string_view what) const;
  // Records DEADLINE_EXCEEDED / UNAVAILABLE / INTERNAL as the abort reason; returns `status`.
  absl::Status Finish(absl::Status status);

  const int rank_;
  const int size_;
  CommOptions options_;
  absl::Status aborted_;
};

}  // namespace comm

#endif  // COMM_COMMUNICATOR_H_
