#include "comm/mpi_communicator.h"

#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "comm/internal/reduce.h"
#include "core/status_macros.h"

namespace comm {
namespace {

// INTERNAL carrying MPI's description of `error`, or OK for MPI_SUCCESS.
absl::Status MpiStatus(int error, absl::string_view what) {
  if (error == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(error, text, &length);
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

// Polls `requests` until all complete or `deadline` passes.
absl::Status WaitAll(std::vector<MPI_Request>& requests, absl::Time deadline,
                     absl::string_view what) {
  for (int spins = 0;; ++spins) {
    int done = 0;
    RETURN_IF_ERROR(
        MpiStatus(MPI_Testall(requests.size(), requests.data(), &done, MPI_STATUSES_IGNORE), what));
    if (done) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": timed out waiting for the other ranks"));
    }
    // Spin briefly for latency, then back off so oversubscribed ranks can run.
    if (spins < 100) {
      std::this_thread::yield();
    } else {
      absl::SleepFor(absl::Microseconds(spins < 2000 ? 2 : 50));
    }
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
  MpiRequest(Communicator* comm, std::vector<MPI_Request> requests, std::string name,
             absl::Status posted)
      : Request(comm),
        requests_(std::move(requests)),
        name_(std::move(name)),
        posted_(std::move(posted)) {}
  ~MpiRequest() override { CancelAll(requests_); }

 protected:
  absl::Status DoWait(absl::Time deadline) override {
    RETURN_IF_ERROR(posted_);
    absl::Status status = WaitAll(requests_, deadline, name_);
    if (!status.ok()) CancelAll(requests_);
    return status;
  }

 private:
  std::vector<MPI_Request> requests_;
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
  bool Supports(MemoryKind memory) const override { return memory == MemoryKind::kHost; }

 protected:
  absl::Status DoBatchP2P(absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs,
                          absl::Time deadline) override {
    std::vector<MPI_Request> requests;
    absl::Status status = Post(comm_, sends, recvs, requests);
    if (status.ok()) status = WaitAll(requests, deadline, P2PName(sends, recvs));
    if (!status.ok()) CancelAll(requests);
    return status;
  }

  std::unique_ptr<Request> DoStartBatchP2P(absl::Span<const SendOp> sends,
                                           absl::Span<const RecvOp> recvs) override {
    std::vector<MPI_Request> requests;
    absl::Status status = Post(comm_, sends, recvs, requests);
    if (!status.ok()) CancelAll(requests);
    return std::make_unique<MpiRequest>(this, std::move(requests), P2PName(sends, recvs),
                                        std::move(status));
  }

  absl::Status DoAllReduce(ConstBuffer input, Buffer output, ReduceOp op,
                           absl::Time deadline) override {
    ASSIGN_OR_RETURN(const int count, IntCount(input.count, "AllReduce"));
    const void* send = input.data == output.data ? MPI_IN_PLACE : input.data;
    return Complete(MPI_Iallreduce(send, output.data, count, MpiType(input.dtype),
                                   MpiOp(op, input.dtype), comm_, &request_),
                    deadline, "AllReduce");
  }

  absl::Status DoAllGather(ConstBuffer input, Buffer output, absl::Time deadline) override {
    ASSIGN_OR_RETURN(const int count, IntCount(input.count, "AllGather"));
    RETURN_IF_ERROR(IntCount(output.count, "AllGather").status());
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
    const MPI_Datatype type = MpiType(input.dtype);
    return Complete(MPI_Ialltoallv(input.data, sends.data(), send_offsets.data(), type, output.data,
                                   recvs.data(), recv_offsets.data(), type, comm_, &request_),
                    deadline, "AllToAll");
  }

  absl::Status DoBroadcast(Buffer buffer, int root, absl::Time deadline) override {
    ASSIGN_OR_RETURN(const int count, IntCount(buffer.count, "Broadcast"));
    return Complete(MPI_Ibcast(buffer.data, count, MpiType(buffer.dtype), root, comm_, &request_),
                    deadline, "Broadcast");
  }

  absl::Status DoBarrier(absl::Time deadline) override {
    return Complete(MPI_Ibarrier(comm_, &request_), deadline, "Barrier");
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key,
                                                        absl::Time deadline) override {
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
  // Checks the start of a non-blocking collective in request_, then polls it to the deadline.
  absl::Status Complete(int start_error, absl::Time deadline, absl::string_view what) {
    RETURN_IF_ERROR(MpiStatus(start_error, what));
    std::vector<MPI_Request> requests = {request_};
    return WaitAll(requests, deadline, what);
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
