#include "comm/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "comm/internal/call.h"
#include "comm/internal/reduce.h"
#include "core/status_macros.h"

namespace comm {
namespace {

// INTERNAL carrying MPI's description of `error`, or OK for MPI_SUCCESS.
absl::Status MpiStatus(int error, absl::string_view what) {
  if (error == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(error, text, &length) != MPI_SUCCESS || length == 0) {
    return absl::InternalError(absl::StrCat(what, ": MPI error ", error));
  }
  return absl::InternalError(absl::StrCat(what, ": MPI error: ", absl::string_view(text, length)));
}

MPI_Datatype MpiType(core::DType dtype) {
  switch (dtype) {
    case core::DType::kF32:
      return MPI_FLOAT;
    case core::DType::kBF16:
      return MPI_UINT16_T;  // moved as raw bits; reductions use the operators below
    case core::DType::kI32:
      return MPI_INT32_T;
    case core::DType::kI64:
      return MPI_INT64_T;
    case core::DType::kU8:
      return MPI_UINT8_T;
  }
  return MPI_DATATYPE_NULL;
}

// bf16 has no MPI type: user-defined operators reduce its raw bits through ReduceInto.
void BFloat16Sum(void* in, void* inout, int* count, MPI_Datatype*) {
  internal::ReduceInto(ReduceOp::kSum, core::DType::kBF16, in, inout, *count);
}
void BFloat16Max(void* in, void* inout, int* count, MPI_Datatype*) {
  internal::ReduceInto(ReduceOp::kMax, core::DType::kBF16, in, inout, *count);
}

struct MpiState {
  absl::Status status;
  MPI_Op bf16_sum = MPI_OP_NULL;
  MPI_Op bf16_max = MPI_OP_NULL;
};

void FinalizeAtExit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

// Initializes MPI once per process.
const MpiState& State() {
  static MpiState* state = [] {
    auto* s = new MpiState;
    int initialized = 0;
    MPI_Initialized(&initialized);
    int provided = MPI_THREAD_SINGLE;
    if (initialized) {
      MPI_Query_thread(&provided);
    } else if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
      s->status = absl::UnavailableError("MPI_Init_thread failed");
      return s;
    } else {
      std::atexit(FinalizeAtExit);
      // Open MPI 4.1 reports the errors of non-blocking collectives on MPI_COMM_WORLD, not on
      // their own communicator: without this, a collective that fails (say, mismatched counts)
      // kills the job instead of returning an error.
      MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    }
    if (provided < MPI_THREAD_MULTIPLE) {
      s->status = absl::FailedPreconditionError(absl::StrCat(
          "MPI provides thread level ", provided, ", the mpi backend needs MPI_THREAD_MULTIPLE"));
      return s;
    }
    MPI_Op_create(BFloat16Sum, /*commute=*/1, &s->bf16_sum);
    MPI_Op_create(BFloat16Max, /*commute=*/1, &s->bf16_max);
    return s;
  }();
  return *state;
}

MPI_Op MpiOp(ReduceOp op, core::DType dtype) {
  if (dtype == core::DType::kBF16) {
    return op == ReduceOp::kSum ? State().bf16_sum : State().bf16_max;
  }
  return op == ReduceOp::kSum ? MPI_SUM : MPI_MAX;
}

// `count` as the int MPI wants, or INVALID_ARGUMENT.
absl::StatusOr<int> IntCount(size_t count, absl::string_view what) {
  if (count > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", count, " elements exceed MPI's limit of ", INT_MAX));
  }
  return static_cast<int>(count);
}

// OK if the message that completed `recv` (with `status` and `error`, MPI_ERR_TRUNCATE when it
// was longer than the buffer) fills its buffer exactly; INVALID_ARGUMENT otherwise.
absl::Status CheckReceived(const RecvOp& recv, MPI_Status& status, int error) {
  const std::string expected = absl::StrCat(Shape(recv.buffer.count, recv.buffer.dtype), " (",
                                            recv.buffer.bytes(), " bytes)");
  if (error == MPI_ERR_TRUNCATE) {
    return absl::InvalidArgumentError(absl::StrCat("Recv from rank ", recv.peer, " (tag ", recv.tag,
                                                   "): the message is longer than the ", expected,
                                                   " the receive expects"));
  }
  RETURN_IF_ERROR(MpiStatus(error, "Recv"));
  MPI_Count bytes = 0;
  RETURN_IF_ERROR(MpiStatus(MPI_Get_elements_x(&status, MPI_BYTE, &bytes), "MPI_Get_elements_x"));
  if (static_cast<size_t>(bytes) != recv.buffer.bytes()) {
    return absl::InvalidArgumentError(absl::StrCat("Recv from rank ", recv.peer, " (tag ", recv.tag,
                                                   "): received ", bytes, " bytes, the receive ",
                                                   "expects ", expected));
  }
  return absl::OkStatus();
}

// Between polls: spin briefly for latency, then back off so oversubscribed ranks can run.
void Backoff(int spins) {
  if (spins < 100) {
    std::this_thread::yield();
  } else {
    absl::SleepFor(absl::Microseconds(spins < 2000 ? 2 : 50));
  }
}

// Polls `requests` until all complete or `deadline` passes. requests[i] for i < recvs.size()
// receives recvs[i]: a message that does not fit it exactly is INVALID_ARGUMENT, returned once
// the other requests have completed too, so that the communicator stays in step.
absl::Status WaitAll(std::vector<MPI_Request>& requests, absl::Span<const RecvOp> recvs,
                     absl::Time deadline, absl::string_view what) {
  std::vector<int> indices(requests.size());
  std::vector<MPI_Status> statuses(requests.size());
  absl::Status mismatch;
  for (int spins = 0;; ++spins) {
    int completed = 0;
    const int error = MPI_Testsome(static_cast<int>(requests.size()), requests.data(), &completed,
                                   indices.data(), statuses.data());
    if (error != MPI_SUCCESS && error != MPI_ERR_IN_STATUS) return MpiStatus(error, what);
    if (completed == MPI_UNDEFINED) return mismatch;  // no request left active
    for (int k = 0; k < completed; ++k) {
      const size_t i = indices[k];
      const int request_error = error == MPI_ERR_IN_STATUS ? statuses[k].MPI_ERROR : MPI_SUCCESS;
      if (i >= recvs.size()) {
        RETURN_IF_ERROR(MpiStatus(request_error, what));
        continue;
      }
      const absl::Status received = CheckReceived(recvs[i], statuses[k], request_error);
      if (!absl::IsInvalidArgument(received)) RETURN_IF_ERROR(received);
      if (mismatch.ok()) mismatch = received;
    }
    if (completed > 0) continue;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": timed out waiting for the other ranks"));
    }
    Backoff(spins);
  }
}

// "BatchP2P (send to 1 2, receive from 3)", naming the peers for error messages.
std::string P2PName(absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs) {
  std::string name = "BatchP2P (send to";
  for (const SendOp& send : sends) absl::StrAppend(&name, " ", send.peer);
  absl::StrAppend(&name, ", receive from");
  for (const RecvOp& recv : recvs) absl::StrAppend(&name, " ", recv.peer);
  return name + ")";
}

// Cancels and frees the requests still active (after an error: the peers may never match them).
void CancelAll(std::vector<MPI_Request>& requests) {
  for (MPI_Request& request : requests) {
    if (request != MPI_REQUEST_NULL) {
      MPI_Cancel(&request);
      MPI_Request_free(&request);
    }
  }
}

// Posts MPI_Irecv for each receive, then MPI_Isend for each send, appending to `requests`.
absl::Status Post(MPI_Comm comm, absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs,
                  std::vector<MPI_Request>& requests) {
  for (const RecvOp& recv : recvs) RETURN_IF_ERROR(IntCount(recv.buffer.count, "Recv").status());
  for (const SendOp& send : sends) RETURN_IF_ERROR(IntCount(send.buffer.count, "Send").status());
  for (const RecvOp& recv : recvs) {
    requests.emplace_back();
    RETURN_IF_ERROR(MpiStatus(
        MPI_Irecv(recv.buffer.data, static_cast<int>(recv.buffer.count), MpiType(recv.buffer.dtype),
                  recv.peer, recv.tag, comm, &requests.back()),
        "MPI_Irecv"));
  }
  for (const SendOp& send : sends) {
    requests.emplace_back();
    RETURN_IF_ERROR(MpiStatus(
        MPI_Isend(send.buffer.data, static_cast<int>(send.buffer.count), MpiType(send.buffer.dtype),
                  send.peer, send.tag, comm, &requests.back()),
        "MPI_Isend"));
  }
  return absl::OkStatus();
}

// A posted batch: Wait polls its MPI requests to the deadline; destruction cancels what is left.
class MpiRequest : public Request {
 public:
  MpiRequest(Communicator* comm, std::vector<MPI_Request> requests, absl::Span<const RecvOp> recvs,
             std::string name, absl::Status posted)
      : Request(comm),
        requests_(std::move(requests)),
        recvs_(recvs.begin(), recvs.end()),
        name_(std::move(name)),
        posted_(std::move(posted)) {}
  ~MpiRequest() override { CancelAll(requests_); }

 protected:
  absl::Status DoWait(absl::Time deadline) override {
    RETURN_IF_ERROR(posted_);
    absl::Status status = WaitAll(requests_, recvs_, deadline, name_);
    if (!status.ok()) CancelAll(requests_);
    return status;
  }

 private:
  std::vector<MPI_Request> requests_;  // the receives first, in the order of recvs_
  std::vector<RecvOp> recvs_;
  std::string name_;
  absl::Status posted_;
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int rank, int size, const CommOptions& options)
      : Communicator(rank, size, options), comm_(comm) {}
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    // An aborted communicator may have operations in flight: leak it rather than block.
    if (!finalized && aborted().ok()) MPI_Comm_free(&comm_);
  }

  absl::string_view backend() const override { return "mpi"; }
  bool Supports(core::Device device) const override { return device == core::Device::kHost; }

 protected:
  absl::Status DoBatchP2P(absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs,
                          absl::Time deadline) override {
    std::vector<MPI_Request> requests;
    absl::Status status = Post(comm_, sends, recvs, requests);
    if (status.ok()) status = WaitAll(requests, recvs, deadline, P2PName(sends, recvs));
    if (!status.ok()) CancelAll(requests);
    return status;
  }

  std::unique_ptr<Request> DoStartBatchP2P(absl::Span<const SendOp> sends,
                                           absl::Span<const RecvOp> recvs) override {
    std::vector<MPI_Request> requests;
    absl::Status status = Post(comm_, sends, recvs, requests);
    if (!status.ok()) CancelAll(requests);
    return std::make_unique<MpiRequest>(this, std::move(requests), recvs, P2PName(sends, recvs),
                                        std::move(status));
  }

  absl::Status DoAllReduce(ConstBuffer input, Buffer output, ReduceOp op,
                           absl::Time deadline) override {
    ASSIGN_OR_RETURN(const int count, IntCount(input.count, "AllReduce"));
    RETURN_IF_ERROR(CompareCalls(internal::Call::AllReduce(input, op), deadline));
    const void* send = input.data == output.data ? MPI_IN_PLACE : input.data;
    return Complete(MPI_Iallreduce(send, output.data, count, MpiType(input.dtype),
                                   MpiOp(op, input.dtype), comm_, &request_),
                    deadline, "AllReduce");
  }

  absl::Status DoReduceScatter(ConstBuffer input, Buffer output, absl::Span<const size_t> counts,
                               ReduceOp op, absl::Time deadline) override {
    RETURN_IF_ERROR(IntCount(input.count, "ReduceScatter").status());
    std::vector<int> recv_counts(counts.begin(), counts.end());  // each fits: their sum does
    RETURN_IF_ERROR(CompareCalls(internal::Call::ReduceScatter(input, op), deadline));
    if (checked()) {  // the per-rank counts too, which must be the same everywhere
      std::vector<int64_t> mine(counts.begin(), counts.end()), all(counts.size() * size());
      RETURN_IF_ERROR(Complete(MPI_Iallgather(mine.data(), size(), MPI_INT64_T, all.data(), size(),
                                              MPI_INT64_T, comm_, &request_),
                               deadline, "ReduceScatter counts"));
      for (int r = 1; r < size(); ++r) {
        if (!std::equal(all.begin(), all.begin() + size(), all.begin() + r * size())) {
          return absl::InvalidArgumentError(absl::StrCat(
              "mismatched ReduceScatter counts: rank 0 has ",
              absl::StrJoin(absl::MakeConstSpan(all).subspan(0, size()), " "), ", rank ", r,
              " has ", absl::StrJoin(absl::MakeConstSpan(all).subspan(r * size(), size()), " ")));
        }
      }
    }
    return Complete(
        MPI_Ireduce_scatter(input.data, output.data, recv_counts.data(), MpiType(input.dtype),
                            MpiOp(op, input.dtype), comm_, &request_),
        deadline, "ReduceScatter");
  }

  absl::Status DoAllGather(ConstBuffer input, Buffer output, absl::Time deadline) override {
    ASSIGN_OR_RETURN(const int count, IntCount(input.count, "AllGather"));
    RETURN_IF_ERROR(IntCount(output.count, "AllGather").status());
    RETURN_IF_ERROR(CompareCalls(internal::Call::AllGather(input), deadline));
    const MPI_Datatype type = MpiType(input.dtype);
    return Complete(
        MPI_Iallgather(input.data, count, type, output.data, count, type, comm_, &request_),
        deadline, "AllGather");
  }

  absl::Status DoAllToAll(ConstBuffer input, absl::Span<const size_t> send_counts, Buffer output,
                          absl::Span<const size_t> recv_counts, absl::Time deadline) override {
    std::vector<int> sends(size()), send_offsets(size()), recvs(size()), recv_offsets(size());
    // The per-peer counts sum to at most these, so each count and offset fits an int too.
    RETURN_IF_ERROR(IntCount(input.count, "AllToAll input").status());
    RETURN_IF_ERROR(IntCount(output.count, "AllToAll output").status());
    for (int p = 0, send_offset = 0, recv_offset = 0; p < size(); ++p) {
      sends[p] = static_cast<int>(send_counts[p]);
      recvs[p] = static_cast<int>(recv_counts[p]);
      send_offsets[p] = send_offset;
      recv_offsets[p] = recv_offset;
      send_offset += sends[p];
      recv_offset += recvs[p];
    }
    RETURN_IF_ERROR(CompareCalls(internal::Call::AllToAll(input), deadline));
    RETURN_IF_ERROR(CompareAllToAllCounts(input.dtype, send_counts, recv_counts, deadline));
    const MPI_Datatype type = MpiType(input.dtype);
    return Complete(MPI_Ialltoallv(input.data, sends.data(), send_offsets.data(), type, output.data,
                                   recvs.data(), recv_offsets.data(), type, comm_, &request_),
                    deadline, "AllToAll");
  }

  absl::Status DoBroadcast(Buffer buffer, int root, absl::Time deadline) override {
    ASSIGN_OR_RETURN(const int count, IntCount(buffer.count, "Broadcast"));
    RETURN_IF_ERROR(CompareCalls(internal::Call::Broadcast(buffer, root), deadline));
    return Complete(MPI_Ibcast(buffer.data, count, MpiType(buffer.dtype), root, comm_, &request_),
                    deadline, "Broadcast");
  }

  absl::Status DoBarrier(absl::Time deadline) override {
    // In checked mode the comparison's all-gather is itself a barrier.
    if (checked()) return CompareCalls(internal::Call::Barrier(), deadline);
    return RollCall(deadline);
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key,
                                                        absl::Time deadline) override {
    RETURN_IF_ERROR(CompareCalls(internal::Call::Split(), deadline));
    // Gather first, with the deadline, so that the blocking MPI_Comm_split below only starts
    // once every rank is known to be in the call.
    const int mine[2] = {color, key};
    std::vector<int> all(2 * size());
    RETURN_IF_ERROR(
        Complete(MPI_Iallgather(mine, 2, MPI_INT, all.data(), 2, MPI_INT, comm_, &request_),
                 deadline, "Split"));
    MPI_Comm child;
    RETURN_IF_ERROR(MpiStatus(MPI_Comm_split(comm_, color, key, &child), "MPI_Comm_split"));
    return Wrap(child, options());
  }

 public:
  // A communicator over `comm`, which it then owns; errors come back as codes, not aborts.
  static absl::StatusOr<std::unique_ptr<Communicator>> Wrap(MPI_Comm comm,
                                                            const CommOptions& options) {
    RETURN_IF_ERROR(
        MpiStatus(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler"));
    int rank = 0, size = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    return std::make_unique<MpiCommunicator>(comm, rank, size, options);
  }

 private:
  // Checks the start of a non-blocking collective in request_, then polls it to the deadline. A
  // collective that fails once started (MPI_ERR_TRUNCATE when the ranks' counts differ) is
  // INTERNAL and aborts the communicator: the other ranks may be left inside the call.
  absl::Status Complete(int start_error, absl::Time deadline, absl::string_view what) {
    RETURN_IF_ERROR(MpiStatus(start_error, what));
    std::vector<MPI_Request> requests = {request_};
    absl::Status status = WaitAll(requests, {}, deadline, what);
    if (absl::IsInternal(status) && !checked()) {
      status = absl::InternalError(
          absl::StrCat(status.message(),
                       " (if the ranks' calls differ, checked mode, --comm_checked, names "
                       "them)"));
    }
    return status;
  }

  // The unchecked barrier, as a roll call that can name who is missing: every rank sends rank 0
  // a token on kBarrierTag; rank 0 waits for them until `deadline`, then answers every rank that
  // came with the list of those that did not. The others wait for that answer until half a
  // timeout past `deadline`, so that rank 0's verdict reaches them; no answer names rank 0.
  absl::Status RollCall(absl::Time deadline) {
    if (size() == 1) return absl::OkStatus();
    std::vector<int32_t> missing(size(), 0);  // rank 0's verdict: 1 for a rank that never came
    if (rank() != 0) {
      const int32_t token = 1;
      std::vector<MPI_Request> requests(2, MPI_REQUEST_NULL);
      absl::Status status = MpiStatus(
          MPI_Irecv(missing.data(), size(), MPI_INT32_T, 0, kBarrierTag, comm_, &requests[0]),
          "MPI_Irecv");
      if (status.ok()) {
        status = MpiStatus(MPI_Isend(&token, 1, MPI_INT32_T, 0, kBarrierTag, comm_, &requests[1]),
                           "MPI_Isend");
      }
      const RecvOp answer{Buffer{missing.data(), missing.size(), core::DType::kI32}, 0,
                          kBarrierTag};
      if (status.ok()) {
        status = WaitAll(requests, {&answer, 1}, deadline + timeout() / 2, "Barrier");
      }
      if (!status.ok()) {
        CancelAll(requests);
        if (absl::IsDeadlineExceeded(status)) {
          return absl::DeadlineExceededError(
              absl::StrCat("Barrier: rank 0 did not answer within ",
                           absl::FormatDuration(timeout() + timeout() / 2)));
        }
        return status;
      }
      return MissingRanks(missing);
    }
    std::vector<int32_t> tokens(size(), 0);
    std::vector<MPI_Request> requests(size() - 1, MPI_REQUEST_NULL);
    for (int peer = 1; peer < size(); ++peer) {
      RETURN_IF_ERROR(MpiStatus(
          MPI_Irecv(&tokens[peer], 1, MPI_INT32_T, peer, kBarrierTag, comm_, &requests[peer - 1]),
          "MPI_Irecv"));
    }
    // Waits for the tokens until the deadline; what did not come is missing.
    for (int spins = 0;; ++spins) {
      int done = 0;
      RETURN_IF_ERROR(MpiStatus(MPI_Testall(static_cast<int>(requests.size()), requests.data(),
                                            &done, MPI_STATUSES_IGNORE),
                                "Barrier"));
      if (done || absl::Now() >= deadline) break;
      Backoff(spins);
    }
    for (int peer = 1; peer < size(); ++peer) {
      int arrived = requests[peer - 1] == MPI_REQUEST_NULL;
      if (!arrived) {
        RETURN_IF_ERROR(
            MpiStatus(MPI_Test(&requests[peer - 1], &arrived, MPI_STATUS_IGNORE), "Barrier"));
      }
      missing[peer] = arrived ? 0 : 1;
    }
    CancelAll(requests);
    std::vector<MPI_Request> answers;
    for (int peer = 1; peer < size(); ++peer) {
      if (missing[peer]) continue;
      answers.emplace_back();
      RETURN_IF_ERROR(MpiStatus(
          MPI_Isend(missing.data(), size(), MPI_INT32_T, peer, kBarrierTag, comm_, &answers.back()),
          "MPI_Isend"));
    }
    absl::Status answered = WaitAll(answers, {}, deadline + timeout() / 2, "Barrier (answers)");
    if (!answered.ok()) CancelAll(answers);
    RETURN_IF_ERROR(MissingRanks(missing));
    return answered;
  }

  // DEADLINE_EXCEEDED naming the ranks flagged in `missing`, or OK if none is.
  absl::Status MissingRanks(const std::vector<int32_t>& missing) const {
    std::vector<int> ranks;
    for (int r = 0; r < size(); ++r) {
      if (missing[r]) ranks.push_back(r);
    }
    if (ranks.empty()) return absl::OkStatus();
    return absl::DeadlineExceededError(absl::StrCat(
        "Barrier: ", ranks.size() == 1 ? "rank " : "ranks ", absl::StrJoin(ranks, ", "),
        " did not arrive within ", absl::FormatDuration(timeout())));
  }

  // Checked mode: every rank gathers every rank's call and compares them before the collective
  // runs (see CommOptions::checked), so that all fail together, with the same message.
  absl::Status CompareCalls(const internal::Call& call, absl::Time deadline) {
    if (!checked()) return absl::OkStatus();
    const internal::EncodedCall mine = internal::Encode(call);
    std::vector<int64_t> all(internal::kEncodedCallSize * size());
    RETURN_IF_ERROR(
        Complete(MPI_Iallgather(mine.data(), internal::kEncodedCallSize, MPI_INT64_T, all.data(),
                                internal::kEncodedCallSize, MPI_INT64_T, comm_, &request_),
                 deadline, internal::Describe(call)));
    return internal::CompareEncodedCalls(all);
  }

  // Checked mode, AllToAll: each rank learns what every peer sends it (an all-to-all of counts)
  // and reports its first mismatch; an all-gather of the reports gives every rank the same
  // verdict, naming the first (receiver, sender) pair as the local backend does.
  absl::Status CompareAllToAllCounts(core::DType dtype, absl::Span<const size_t> send_counts,
                                     absl::Span<const size_t> recv_counts, absl::Time deadline) {
    if (!checked()) return absl::OkStatus();
    std::vector<int64_t> sent(send_counts.begin(), send_counts.end()), sent_here(size());
    RETURN_IF_ERROR(Complete(MPI_Ialltoall(sent.data(), 1, MPI_INT64_T, sent_here.data(), 1,
                                           MPI_INT64_T, comm_, &request_),
                             deadline, "AllToAll counts"));
    int64_t report[3] = {-1, 0, 0};  // first sender whose count differs, its count, the expected
    for (int p = 0; p < size() && report[0] < 0; ++p) {
      if (sent_here[p] != static_cast<int64_t>(recv_counts[p])) {
        report[0] = p;
        report[1] = sent_here[p];
        report[2] = static_cast<int64_t>(recv_counts[p]);
      }
    }
    std::vector<int64_t> reports(3 * size());
    RETURN_IF_ERROR(Complete(
        MPI_Iallgather(report, 3, MPI_INT64_T, reports.data(), 3, MPI_INT64_T, comm_, &request_),
        deadline, "AllToAll counts"));
    for (int to = 0; to < size(); ++to) {
      const int64_t* r = &reports[3 * to];
      if (r[0] >= 0) {
        return absl::InvalidArgumentError(absl::StrCat("mismatched AllToAll counts: rank ", r[0],
                                                       " sends ", Shape(r[1], dtype), " to rank ",
                                                       to, ", which expects ", Shape(r[2], dtype)));
      }
    }
    return absl::OkStatus();
  }

  MPI_Comm comm_;
  MPI_Request request_ = MPI_REQUEST_NULL;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiWorld(const CommOptions& options) {
  RETURN_IF_ERROR(ValidateCommOptions(options));
  RETURN_IF_ERROR(State().status);
  static std::mutex mu;  // MPI_Comm_dup from several threads at once would need a fixed order
  std::lock_guard<std::mutex> lock(mu);
  MPI_Comm world;
  RETURN_IF_ERROR(MpiStatus(MPI_Comm_dup(MPI_COMM_WORLD, &world), "MPI_Comm_dup"));
  return MpiCommunicator::Wrap(world, options);
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiWorld() {
  ASSIGN_OR_RETURN(const CommOptions options, CommOptionsFromFlags());
  return CreateMpiWorld(options);
}

}  // namespace comm
