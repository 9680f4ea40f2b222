#include "comm/communicator.h"

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"

ABSL_FLAG(absl::Duration, comm_timeout, comm::CommOptions().timeout,
          "Longest a blocking communication call may wait before it fails with "
          "DEADLINE_EXCEEDED; must be positive.");
ABSL_FLAG(bool, comm_checked, comm::kCheckedByDefault,
          "Checked mode: before each collective the ranks compare their calls, so that mismatched "
          "calls fail with INVALID_ARGUMENT naming both (costs a small all-gather per collective "
          "on mpi). Defaults to true except in -c opt builds.");

namespace comm {
namespace {

size_t Sum(absl::Span<const size_t> counts) {
  size_t total = 0;
  for (size_t count : counts) total += count;
  return total;
}

// The default non-blocking batch: runs the blocking one when waited.
class DeferredRequest : public Request {
 public:
  using Run =
      std::function<absl::Status(absl::Span<const SendOp>, absl::Span<const RecvOp>, absl::Time)>;
  DeferredRequest(Communicator* comm, absl::Span<const SendOp> sends,
                  absl::Span<const RecvOp> recvs, Run run)
      : Request(comm),
        sends_(sends.begin(), sends.end()),
        recvs_(recvs.begin(), recvs.end()),
        run_(std::move(run)) {}

 protected:
  absl::Status DoWait(absl::Time deadline) override { return run_(sends_, recvs_, deadline); }

 private:
  std::vector<SendOp> sends_;
  std::vector<RecvOp> recvs_;
  Run run_;
};

}  // namespace

absl::Status ValidateCommOptions(const CommOptions& options) {
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("communicator timeout must be positive, got ",
                                                   absl::FormatDuration(options.timeout)));
  }
  return absl::OkStatus();
}

absl::StatusOr<CommOptions> CommOptionsFromFlags() {
  const CommOptions options = {.timeout = absl::GetFlag(FLAGS_comm_timeout),
                               .checked = absl::GetFlag(FLAGS_comm_checked)};
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--comm_timeout must be positive, got ",
                                                   absl::FormatDuration(options.timeout)));
  }
  return options;
}

absl::Status ValidateCommFlags() { return CommOptionsFromFlags().status(); }

Communicator::Communicator(int rank, int size, const CommOptions& options)
    : rank_(rank), size_(size), options_(options) {
  DSMOE_CHECK(size > 0 && rank >= 0 && rank < size, "Communicator: rank ", rank, " for size ",
              size);
  const absl::Status valid = ValidateCommOptions(options);
  DSMOE_CHECK(valid.ok(), "Communicator: ", valid.message());
}

void Communicator::set_timeout(absl::Duration timeout) {
  DSMOE_CHECK(timeout > absl::ZeroDuration(), "Communicator::set_timeout: timeout ",
              absl::FormatDuration(timeout));
  options_.timeout = timeout;
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
    return absl::InvalidArgumentError(absl::StrCat(what, ": the ", backend(),
                                                   " backend does not accept ",
                                                   core::Name(buffer.memory), " memory"));
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
  if ((absl::IsDeadlineExceeded(status) || absl::IsUnavailable(status) ||
       absl::IsInternal(status)) &&
      aborted_.ok()) {
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

absl::Status Request::Wait() {
  if (!result_.has_value()) {
    absl::Status status = comm_->CheckNotAborted();
    if (status.ok()) status = comm_->Finish(DoWait(absl::Now() + comm_->timeout()));
    result_ = std::move(status);
  }
  return *result_;
}

std::unique_ptr<Request> Communicator::DoStartBatchP2P(absl::Span<const SendOp> sends,
                                                       absl::Span<const RecvOp> recvs) {
  return std::make_unique<DeferredRequest>(
      this, sends, recvs,
      [this](absl::Span<const SendOp> s, absl::Span<const RecvOp> r, absl::Time deadline) {
        return DoBatchP2P(s, r, deadline);
      });
}

absl::Status Communicator::CheckBatch(absl::Span<const SendOp> sends,
                                      absl::Span<const RecvOp> recvs) const {
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
  return CheckNotAborted();
}

absl::Status Communicator::BatchP2P(absl::Span<const SendOp> sends,
                                    absl::Span<const RecvOp> recvs) {
  RETURN_IF_ERROR(CheckBatch(sends, recvs));
  return Finish(DoBatchP2P(sends, recvs, absl::Now() + timeout()));
}

absl::StatusOr<std::unique_ptr<Request>> Communicator::StartBatchP2P(
    absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs) {
  RETURN_IF_ERROR(CheckBatch(sends, recvs));
  return DoStartBatchP2P(sends, recvs);
}

absl::Status Communicator::AllReduce(ConstBuffer input, Buffer output, ReduceOp op) {
  RETURN_IF_ERROR(CheckUsable(input, "AllReduce input"));
  RETURN_IF_ERROR(CheckUsable(output, "AllReduce output"));
  if (input.count != output.count || input.dtype != output.dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat("AllReduce: input has ", Shape(input.count, input.dtype), " but output has ",
                     Shape(output.count, output.dtype)));
  }
  return Finish(DoAllReduce(input, output, op, absl::Now() + timeout()));
}

absl::Status Communicator::ReduceScatter(ConstBuffer input, Buffer output,
                                         absl::Span<const size_t> counts, ReduceOp op) {
  RETURN_IF_ERROR(CheckUsable(input, "ReduceScatter input"));
  RETURN_IF_ERROR(CheckUsable(output, "ReduceScatter output"));
  if (counts.size() != static_cast<size_t>(size_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ReduceScatter: counts need ", size_, " entries, have ", counts.size()));
  }
  if (Sum(counts) != input.count || counts[rank_] != output.count || input.dtype != output.dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat("ReduceScatter: counts sum to ", Sum(counts), " with ", counts[rank_],
                     " for this rank, but the input has ", Shape(input.count, input.dtype),
                     " and the output ", Shape(output.count, output.dtype)));
  }
  const char* in = static_cast<const char*>(input.data);
  const char* out = static_cast<const char*>(output.data);
  if (output.count > 0 && input.count > 0 && out < in + input.bytes() &&
      in < out + output.bytes()) {
    return absl::InvalidArgumentError("ReduceScatter: the output overlaps the input");
  }
  return Finish(DoReduceScatter(input, output, counts, op, absl::Now() + timeout()));
}

absl::Status Communicator::AllGather(ConstBuffer input, Buffer output) {
  RETURN_IF_ERROR(CheckUsable(input, "AllGather input"));
  RETURN_IF_ERROR(CheckUsable(output, "AllGather output"));
  if (output.count != input.count * size_ || input.dtype != output.dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AllGather: output must hold size() * input count = ",
        Shape(input.count * size_, input.dtype), ", has ", Shape(output.count, output.dtype)));
  }
  return Finish(DoAllGather(input, output, absl::Now() + timeout()));
}

absl::Status Communicator::CheckAllToAll(ConstBuffer input, absl::Span<const size_t> send_counts,
                                         Buffer output,
                                         absl::Span<const size_t> recv_counts) const {
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
  return absl::OkStatus();
}

absl::Status Communicator::AllToAll(ConstBuffer input, absl::Span<const size_t> send_counts,
                                    Buffer output, absl::Span<const size_t> recv_counts) {
  RETURN_IF_ERROR(CheckAllToAll(input, send_counts, output, recv_counts));
  return Finish(DoAllToAll(input, send_counts, output, recv_counts, absl::Now() + timeout()));
}

absl::StatusOr<std::unique_ptr<Request>> Communicator::StartAllToAll(
    ConstBuffer input, absl::Span<const size_t> send_counts, Buffer output,
    absl::Span<const size_t> recv_counts) {
  RETURN_IF_ERROR(CheckAllToAll(input, send_counts, output, recv_counts));
  const size_t element = core::SizeOf(input.dtype);
  std::vector<SendOp> sends(size_);
  std::vector<RecvOp> recvs(size_);
  size_t sent = 0;
  size_t received = 0;
  for (int peer = 0; peer < size_; ++peer) {
    sends[peer] = {ConstBuffer(static_cast<const std::byte*>(input.data) + sent * element,
                               send_counts[peer], input.dtype, input.memory),
                   peer, kAllToAllTag};
    recvs[peer] = {Buffer{static_cast<std::byte*>(output.data) + received * element,
                          recv_counts[peer], output.dtype, output.memory},
                   peer, kAllToAllTag};
    sent += send_counts[peer];
    received += recv_counts[peer];
  }
  return DoStartBatchP2P(sends, recvs);
}

absl::Status Communicator::Broadcast(Buffer buffer, int root) {
  RETURN_IF_ERROR(CheckUsable(buffer, "Broadcast buffer"));
  RETURN_IF_ERROR(CheckPeer(root, "Broadcast root"));
  return Finish(DoBroadcast(buffer, root, absl::Now() + timeout()));
}

absl::Status Communicator::Barrier() {
  RETURN_IF_ERROR(CheckNotAborted());
  return Finish(DoBarrier(absl::Now() + timeout()));
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Split(int color, int key) {
  if (color < 0) {
    return absl::InvalidArgumentError(absl::StrCat("Split: color must be >= 0, got ", color));
  }
  RETURN_IF_ERROR(CheckNotAborted());
  absl::StatusOr<std::unique_ptr<Communicator>> child =
      DoSplit(color, key, absl::Now() + timeout());
  if (!child.ok()) return Finish(child.status());
  (*child)->options_ = options_;
  return child;
}

}  // namespace comm
