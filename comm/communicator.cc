#include "comm/communicator.h"

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"

ABSL_FLAG(absl::Duration, comm_timeout, absl::Seconds(60),
          "Longest a blocking communication call may wait before it fails with "
          "DEADLINE_EXCEEDED; must be positive.");

namespace comm {
namespace {

size_t Sum(absl::Span<const size_t> counts) {
  size_t total = 0;
  for (size_t count : counts) total += count;
  return total;
}

}  // namespace

absl::Status ValidateCommFlags() {
  const absl::Duration timeout = absl::GetFlag(FLAGS_comm_timeout);
  if (timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--comm_timeout must be positive, got ", absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

Communicator::Communicator(int rank, int size)
    : rank_(rank), size_(size), timeout_(absl::GetFlag(FLAGS_comm_timeout)) {
  DSMOE_CHECK(size > 0 && rank >= 0 && rank < size, "Communicator: rank ", rank, " for size ",
              size);
  const absl::Status flags = ValidateCommFlags();
  DSMOE_CHECK(flags.ok(), "Communicator: ", flags.message());
}

void Communicator::set_timeout(absl::Duration timeout) {
  DSMOE_CHECK(timeout > absl::ZeroDuration(), "Communicator::set_timeout: timeout ",
              absl::FormatDuration(timeout));
  timeout_ = timeout;
}

absl::Status Communicator::CheckNotAborted() const {
  if (!aborted_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("communicator aborted by an earlier error: ", aborted_.message()));
  }
  return absl::OkStatus();
}

absl::Status Communicator::CheckUsable(ConstBuffer buffer, absl::string_view what) const {
  RETURN_IF_ERROR(CheckNotAborted());
  if (!Supports(buffer.memory)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the ", backend(), " backend does not accept ",
                     buffer.memory == MemoryKind::kHost ? "host" : "device", " memory"));
  }
  if (buffer.data == nullptr && buffer.count > 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": null data with count ", buffer.count));
  }
  return absl::OkStatus();
}

absl::Status Communicator::CheckPeer(int peer, absl::string_view what) const {
  if (peer < 0 || peer >= size_) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": rank ", peer, " out of range [0, ", size_, ")"));
  }
  return absl::OkStatus();
}

absl::Status Communicator::CheckTag(int tag) const {
  if (tag < 0 || tag > kMaxTag) {
    return absl::InvalidArgumentError(
        absl::StrCat("tag ", tag, " out of range [0, ", kMaxTag, "]"));
  }
  return absl::OkStatus();
}

absl::Status Communicator::Finish(absl::Status status) {
  if ((absl::IsDeadlineExceeded(status) || absl::IsUnavailable(status)) && aborted_.ok()) {
    aborted_ = status;
    OnAbort();
  }
  return status;
}

absl::Status Communicator::Send(ConstBuffer buffer, int peer, int tag) {
  const SendOp op{buffer, peer, tag};
  return BatchP2P({&op, 1}, {});
}

absl::Status Communicator::Recv(Buffer buffer, int peer, int tag) {
  const RecvOp op{buffer, peer, tag};
  return BatchP2P({}, {&op, 1});
}

absl::Status Communicator::BatchP2P(absl::Span<const SendOp> sends,
                                    absl::Span<const RecvOp> recvs) {
  for (const SendOp& send : sends) {
    RETURN_IF_ERROR(CheckUsable(send.buffer, "send buffer"));
    RETURN_IF_ERROR(CheckPeer(send.peer, "send peer"));
    RETURN_IF_ERROR(CheckTag(send.tag));
  }
  for (const RecvOp& recv : recvs) {
    RETURN_IF_ERROR(CheckUsable(recv.buffer, "receive buffer"));
    RETURN_IF_ERROR(CheckPeer(recv.peer, "receive peer"));
    RETURN_IF_ERROR(CheckTag(recv.tag));
  }
  RETURN_IF_ERROR(CheckNotAborted());
  return Finish(DoBatchP2P(sends, recvs, absl::Now() + timeout_));
}

absl::Status Communicator::AllReduce(ConstBuffer input, Buffer output, ReduceOp op) {
  RETURN_IF_ERROR(CheckUsable(input, "AllReduce input"));
  RETURN_IF_ERROR(CheckUsable(output, "AllReduce output"));
  if (input.count != output.count || input.dtype != output.dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat("AllReduce: input has ", Shape(input.count, input.dtype), " but output has ",
                     Shape(output.count, output.dtype)));
  }
  return Finish(DoAllReduce(input, output, op, absl::Now() + timeout_));
}

absl::Status Communicator::AllGather(ConstBuffer input, Buffer output) {
  RETURN_IF_ERROR(CheckUsable(input, "AllGather input"));
  RETURN_IF_ERROR(CheckUsable(output, "AllGather output"));
  if (output.count != input.count * size_ || input.dtype != output.dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AllGather: output must hold size() * input count = ",
        Shape(input.count * size_, input.dtype), ", has ", Shape(output.count, output.dtype)));
  }
  return Finish(DoAllGather(input, output, absl::Now() + timeout_));
}

absl::Status Communicator::AllToAll(ConstBuffer input, absl::Span<const size_t> send_counts,
                                    Buffer output, absl::Span<const size_t> recv_counts) {
  RETURN_IF_ERROR(CheckUsable(input, "AllToAll input"));
  RETURN_IF_ERROR(CheckUsable(output, "AllToAll output"));
  if (send_counts.size() != static_cast<size_t>(size_) ||
      recv_counts.size() != static_cast<size_t>(size_)) {
    return absl::InvalidArgumentError(absl::StrCat("AllToAll: send_counts and recv_counts need ",
                                                   size_, " entries, have ", send_counts.size(),
                                                   " and ", recv_counts.size()));
  }
  if (input.dtype != output.dtype) {
    return absl::InvalidArgumentError(absl::StrCat("AllToAll: input has dtype ",
                                                   core::Name(input.dtype), ", output ",
                                                   core::Name(output.dtype)));
  }
  if (Sum(send_counts) > input.count || Sum(recv_counts) > output.count) {
    return absl::InvalidArgumentError(
        absl::StrCat("AllToAll: counts sum to ", Sum(send_counts), " sent and ", Sum(recv_counts),
                     " received, buffers hold ", input.count, " and ", output.count));
  }
  return Finish(DoAllToAll(input, send_counts, output, recv_counts, absl::Now() + timeout_));
}

absl::Status Communicator::Broadcast(Buffer buffer, int root) {
  RETURN_IF_ERROR(CheckUsable(buffer, "Broadcast buffer"));
  RETURN_IF_ERROR(CheckPeer(root, "Broadcast root"));
  return Finish(DoBroadcast(buffer, root, absl::Now() + timeout_));
}

absl::Status Communicator::Barrier() {
  RETURN_IF_ERROR(CheckNotAborted());
  return Finish(DoBarrier(absl::Now() + timeout_));
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Split(int color, int key) {
  if (color < 0) {
    return absl::InvalidArgumentError(absl::StrCat("Split: color must be >= 0, got ", color));
  }
  RETURN_IF_ERROR(CheckNotAborted());
  absl::StatusOr<std::unique_ptr<Communicator>> child = DoSplit(color, key, absl::Now() + timeout_);
  if (!child.ok()) return Finish(child.status());
  (*child)->timeout_ = timeout_;
  return child;
}

}  // namespace comm
