// Shared state of one group of the local backend: the ranks are threads of this process and
// exchange data by copying straight from the sender's buffer into the receiver's (no staging).
//
// Collectives use "posts": each rank writes its post (pointers and arguments of the call), then
// all ranks Meet, which compares what each rank called (internal::Call) and fails them all
// together when the calls differ, before anyone reads a post; then they read each other's posts
// and buffers, and meet again at a Barrier before any post or buffer is reused. Point-to-point
// messages are rendezvous: a send is posted, and the receiver copies from the sender's buffer, then
// marks it done.
#ifndef COMM_INTERNAL_LOCAL_WORLD_H_
#define COMM_INTERNAL_LOCAL_WORLD_H_

#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "comm/buffer.h"
#include "comm/internal/call.h"

namespace comm::internal {

class LocalWorld {
 public:
  // The arguments of one rank's current collective call.
  struct Post {
    ConstBuffer input;
    Buffer output;
    absl::Span<const size_t> send_counts;
    absl::Span<const size_t> recv_counts;
    const void* reduced = nullptr;  // AllReduce: this rank's reduced slice
    int color = 0;
    int key = 0;
    std::shared_ptr<LocalWorld> child;
  };

  // Precondition: size >= 1.
  explicit LocalWorld(int size);

  int size() const { return size_; }

  // Rank `rank`'s post. Only `rank` writes it, before a Barrier; others read it between the
  // Barrier and the next one.
  Post& post(int rank) { return posts_[rank]; }

  // Returns once all ranks have called Barrier the same number of times. DEADLINE_EXCEEDED at
  // `deadline`; UNAVAILABLE if a rank left or the group was aborted. `what` names the call.
  absl::Status Barrier(int rank, absl::Time deadline, absl::string_view what);
  // A Barrier that also compares the ranks' calls: the same errors as Barrier, or on every rank
  // the INVALID_ARGUMENT of CompareCalls when the calls differ. The first barrier of every
  // collective, so that a mismatch fails all ranks at the same point and they stay in step.
  absl::Status Meet(int rank, const Call& call, absl::Time deadline);

  // A posted send (see PostSends).
  struct Message {
    int source;
    int dest;
    int tag;
    ConstBuffer buffer;
    uint64_t sequence;   // its place among the sends from source to dest with this tag
    bool taken = false;  // a receiver is copying it
    bool done = false;   // copied, or refused with `status`
    absl::Status status;
  };

  using PostedSend = std::list<Message>::iterator;

  // Posts `sends` from `rank`, fills `recvs` and waits until the sends are received. On error,
  // sends not yet taken are withdrawn, so no peer reads the buffers after this returns.
  absl::Status Exchange(int rank, absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs,
                        absl::Time deadline);

  // Exchange in steps: PostSends makes `sends` visible to their receivers (UNAVAILABLE if the
  // group failed); PostReceives gives each receive its place among those of `rank` from the same
  // peer with the same tag, so that receives match sends in the order both were posted (as MPI's
  // do), whatever order their requests are waited in; Complete fills `recvs` (with the places
  // PostReceives gave them) and waits until the posted sends are received, then forgets them,
  // withdrawing those not taken on error. Withdraw forgets posted sends without completing them:
  // those not yet taken are removed, copies in progress are waited for.
  absl::StatusOr<std::vector<PostedSend>> PostSends(int rank, absl::Span<const SendOp> sends);
  std::vector<uint64_t> PostReceives(int rank, absl::Span<const RecvOp> recvs);
  absl::Status Complete(int rank, const std::vector<PostedSend>& posted,
                        absl::Span<const RecvOp> recvs, absl::Span<const uint64_t> sequences,
                        absl::Time deadline);
  void Withdraw(const std::vector<PostedSend>& posted);

  // Marks `rank` as gone: others waiting for it get UNAVAILABLE.
  void Leave(int rank);
  // Aborts the group because of `why` at `rank`: every current and later wait fails.
  void Abort(int rank, const absl::Status& why);

 private:
  // OK unless aborted or `peer` (any rank if -1) has left.
  // Callers hold mu_.
  absl::Status HealthLocked(int peer) const;
  // Barrier, and Meet when `call` is not null.
  absl::Status Arrive(int rank, const Call* call, absl::Time deadline, absl::string_view what);
  // Waits on cv_ until notified or `deadline`; true if the deadline passed.
  bool WaitUntil(std::unique_lock<std::mutex>& lock, absl::Time deadline);
  absl::Status ReceiveOne(int rank, const RecvOp& recv, uint64_t sequence, absl::Time deadline);

  const int size_;
  std::vector<Post> posts_;
  // std::mutex rather than absl::Mutex: Debian's Abseil is not built for ThreadSanitizer, and
  // these are the waits that TSan should check. Everything below is guarded by mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  std::vector<Call> calls_;  // each rank's call at the current Meet
  absl::Status verdict_;     // of the last Meet; stable until every rank has read it
  uint64_t generation_ = 0;
  std::vector<bool> gone_;
  absl::Status failure_;
  std::list<Message> messages_;
  // (source, dest, tag) -> sends posted, receives posted.
  std::map<std::tuple<int, int, int>, uint64_t> sends_posted_;
  std::map<std::tuple<int, int, int>, uint64_t> receives_posted_;
};

}  // namespace comm::internal

#endif  // COMM_INTERNAL_LOCAL_WORLD_H_
