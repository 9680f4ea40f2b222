#include "comm/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/cuda_status.h"
#include "core/status_macros.h"

namespace comm {
namespace {

#define COMM_CUDA_STATUS(expr) ::core::CudaStatus((expr), __FILE__, __LINE__)

// OK for ncclSuccess and ncclInProgress (checked later by polling); otherwise the error with
// NCCL's last message for `comm` (may be null). A remote failure means a peer is gone.
absl::Status NcclStatus(ncclResult_t result, ncclComm_t comm, absl::string_view what) {
  if (result == ncclSuccess || result == ncclInProgress) return absl::OkStatus();
  const std::string message =
      absl::StrCat(what, ": ", ncclGetErrorString(result), ": ", ncclGetLastError(comm));
  switch (result) {
    case ncclRemoteError:
      return absl::UnavailableError(message);
    case ncclInvalidArgument:
    case ncclInvalidUsage:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

ncclDataType_t NcclType(core::DType dtype) {
  switch (dtype) {
    case core::DType::kF32:
      return ncclFloat32;
    case core::DType::kBF16:
      return ncclBfloat16;
    case core::DType::kI32:
      return ncclInt32;
    case core::DType::kI64:
      return ncclInt64;
    case core::DType::kU8:
      return ncclUint8;
  }
  return ncclFloat32;
}

ncclConfig_t NonBlockingConfig() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // calls return ncclInProgress; completion is polled against deadlines
  return config;
}

// Back-off between polls: spin first for latency, then sleep.
void Pause(int spins) {
  if (spins < 100) {
    std::this_thread::yield();
  } else {
    absl::SleepFor(absl::Microseconds(spins < 2000 ? 2 : 50));
  }
}

// Polls `comm`'s asynchronous state until it leaves ncclInProgress or `deadline` passes.
absl::Status AwaitReady(ncclComm_t comm, absl::Time deadline, absl::string_view what) {
  for (int spins = 0;; ++spins) {
    ncclResult_t state = ncclSuccess;
    RETURN_IF_ERROR(NcclStatus(ncclCommGetAsyncError(comm, &state), comm, what));
    if (state != ncclInProgress) return NcclStatus(state, comm, what);
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": timed out waiting for NCCL"));
    }
    Pause(spins);
  }
}

class NcclCommunicator : public Communicator {
 public:
  // Takes ownership of `comm`, which is ready (not in progress).
  static absl::StatusOr<std::unique_ptr<Communicator>> Create(ncclComm_t comm, int device,
                                                              const CommOptions& options) {
    int rank = 0, size = 0;
    RETURN_IF_ERROR(NcclStatus(ncclCommUserRank(comm, &rank), comm, "ncclCommUserRank"));
    RETURN_IF_ERROR(NcclStatus(ncclCommCount(comm, &size), comm, "ncclCommCount"));
    auto result =
        std::unique_ptr<NcclCommunicator>(new NcclCommunicator(comm, device, rank, size, options));
    RETURN_IF_ERROR(
        COMM_CUDA_STATUS(cudaStreamCreateWithFlags(&result->stream_, cudaStreamNonBlocking)));
    RETURN_IF_ERROR(COMM_CUDA_STATUS(cudaMalloc(&result->scratch_, sizeof(float))));
    return result;
  }

  ~NcclCommunicator() override {
    cudaSetDevice(device_);
    if (comm_ != nullptr) {
      // Flush, with a bound; a communicator that cannot finish in time is aborted instead.
      const ncclResult_t finalize = ncclCommFinalize(comm_);
      const bool flushed = (finalize == ncclSuccess || finalize == ncclInProgress) &&
                           AwaitReady(comm_, absl::Now() + timeout(), "ncclCommFinalize").ok();
      if (flushed) {
        ncclCommDestroy(comm_);
      } else {
        ncclCommAbort(comm_);
      }
    }
    if (scratch_ != nullptr) cudaFree(scratch_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  absl::string_view backend() const override { return "nccl"; }
  bool Supports(core::Device device) const override { return device == core::Device::kCuda; }

 protected:
  absl::Status DoBatchP2P(absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs,
                          absl::Time deadline) override {
    return Run("BatchP2P", deadline, [&]() -> absl::Status {
      RETURN_IF_ERROR(NcclStatus(ncclGroupStart(), comm_, "ncclGroupStart"));
      absl::Status status;
      for (const SendOp& send : sends) {
        if (!status.ok()) break;
        status = NcclStatus(ncclSend(send.buffer.data, send.buffer.count,
                                     NcclType(send.buffer.dtype), send.peer, comm_, stream_),
                            comm_, "ncclSend");
      }
      for (const RecvOp& recv : recvs) {
        if (!status.ok()) break;
        status = NcclStatus(ncclRecv(recv.buffer.data, recv.buffer.count,
                                     NcclType(recv.buffer.dtype), recv.peer, comm_, stream_),
                            comm_, "ncclRecv");
      }
      const absl::Status end = NcclStatus(ncclGroupEnd(), comm_, "ncclGroupEnd");
      return status.ok() ? end : status;
    });
  }

  absl::Status DoAllReduce(ConstBuffer input, Buffer output, ReduceOp op,
                           absl::Time deadline) override {
    return Run("AllReduce", deadline, [&] {
      return NcclStatus(ncclAllReduce(input.data, output.data, input.count, NcclType(input.dtype),
                                      op == ReduceOp::kSum ? ncclSum : ncclMax, comm_, stream_),
                        comm_, "ncclAllReduce");
    });
  }

  // ncclReduceScatter takes equal parts; uneven ones go as one group of ncclReduce calls, rank r
  // the root of its part.
  absl::Status DoReduceScatter(ConstBuffer input, Buffer output, absl::Span<const size_t> counts,
                               ReduceOp op, absl::Time deadline) override {
    const ncclRedOp_t nccl_op = op == ReduceOp::kSum ? ncclSum : ncclMax;
    const bool even =
        std::all_of(counts.begin(), counts.end(), [&](size_t count) { return count == counts[0]; });
    return Run("ReduceScatter", deadline, [&]() -> absl::Status {
      if (even) {
        return NcclStatus(ncclReduceScatter(input.data, output.data, output.count,
                                            NcclType(input.dtype), nccl_op, comm_, stream_),
                          comm_, "ncclReduceScatter");
      }
      RETURN_IF_ERROR(NcclStatus(ncclGroupStart(), comm_, "ncclGroupStart"));
      absl::Status status;
      size_t offset = 0;
      for (int r = 0; r < size() && status.ok(); ++r) {
        status = NcclStatus(
            ncclReduce(static_cast<const char*>(input.data) + offset * core::SizeOf(input.dtype),
                       output.data, counts[r], NcclType(input.dtype), nccl_op, r, comm_, stream_),
            comm_, "ncclReduce");
        offset += counts[r];
      }
      const absl::Status end = NcclStatus(ncclGroupEnd(), comm_, "ncclGroupEnd");
      return status.ok() ? end : status;
    });
  }

  absl::Status DoAllGather(ConstBuffer input, Buffer output, absl::Time deadline) override {
    return Run("AllGather", deadline, [&] {
      return NcclStatus(ncclAllGather(input.data, output.data, input.count, NcclType(input.dtype),
                                      comm_, stream_),
                        comm_, "ncclAllGather");
    });
  }

  absl::Status DoAllToAll(ConstBuffer input, absl::Span<const size_t> send_counts, Buffer output,
                          absl::Span<const size_t> recv_counts, absl::Time deadline) override {
    const size_t element = core::SizeOf(input.dtype);
    return Run("AllToAll", deadline, [&]() -> absl::Status {
      RETURN_IF_ERROR(NcclStatus(ncclGroupStart(), comm_, "ncclGroupStart"));
      absl::Status status;
      size_t send_offset = 0, recv_offset = 0;
      for (int p = 0; p < size() && status.ok(); ++p) {
        if (send_counts[p] > 0) {
          status = NcclStatus(ncclSend(static_cast<const char*>(input.data) + send_offset * element,
                                       send_counts[p], NcclType(input.dtype), p, comm_, stream_),
                              comm_, "ncclSend");
        }
        if (status.ok() && recv_counts[p] > 0) {
          status = NcclStatus(ncclRecv(static_cast<char*>(output.data) + recv_offset * element,
                                       recv_counts[p], NcclType(output.dtype), p, comm_, stream_),
                              comm_, "ncclRecv");
        }
        send_offset += send_counts[p];
        recv_offset += recv_counts[p];
      }
      const absl::Status end = NcclStatus(ncclGroupEnd(), comm_, "ncclGroupEnd");
      return status.ok() ? end : status;
    });
  }

  absl::Status DoBroadcast(Buffer buffer, int root, absl::Time deadline) override {
    return Run("Broadcast", deadline, [&] {
      return NcclStatus(ncclBroadcast(buffer.data, buffer.data, buffer.count,
                                      NcclType(buffer.dtype), root, comm_, stream_),
                        comm_, "ncclBroadcast");
    });
  }

  absl::Status DoBarrier(absl::Time deadline) override {
    return Run("Barrier", deadline, [&] {
      return NcclStatus(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream_),
                        comm_, "ncclAllReduce");
    });
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key,
                                                        absl::Time deadline) override {
    RETURN_IF_ERROR(COMM_CUDA_STATUS(cudaSetDevice(device_)));
    ncclConfig_t config = NonBlockingConfig();
    ncclComm_t child = nullptr;
    RETURN_IF_ERROR(
        NcclStatus(ncclCommSplit(comm_, color, key, &child, &config), comm_, "ncclCommSplit"));
    RETURN_IF_ERROR(AwaitReady(comm_, deadline, "ncclCommSplit"));
    if (child == nullptr) {
      return absl::InternalError("ncclCommSplit returned no communicator");
    }
    const absl::Status ready = AwaitReady(child, deadline, "ncclCommSplit");
    if (!ready.ok()) {
      ncclCommAbort(child);
      return ready;
    }
    return Create(child, device_, options());
  }

  void OnAbort() override {
    if (comm_ != nullptr) {
      cudaSetDevice(device_);
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
  }

 private:
  NcclCommunicator(ncclComm_t comm, int device, int rank, int size, const CommOptions& options)
      : Communicator(rank, size, options), comm_(comm), device_(device) {}

  // Enqueues with `enqueue` (returning its Status), then polls the stream and NCCL's
  // asynchronous error until the work is done, fails, or `deadline` passes.
  template <typename Enqueue>
  absl::Status Run(absl::string_view what, absl::Time deadline, Enqueue enqueue) {
    RETURN_IF_ERROR(COMM_CUDA_STATUS(cudaSetDevice(device_)));
    RETURN_IF_ERROR(enqueue());
    RETURN_IF_ERROR(AwaitReady(comm_, deadline, what));
    for (int spins = 0;; ++spins) {
      const cudaError_t query = cudaStreamQuery(stream_);
      if (query == cudaSuccess) return absl::OkStatus();
      if (query != cudaErrorNotReady) return COMM_CUDA_STATUS(query);
      ncclResult_t state = ncclSuccess;
      RETURN_IF_ERROR(NcclStatus(ncclCommGetAsyncError(comm_, &state), comm_, what));
      RETURN_IF_ERROR(NcclStatus(state, comm_, what));
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat(what, ": timed out waiting for the other ranks; NCCL aborted"));
      }
      Pause(spins);
    }
  }

  ncclComm_t comm_;
  const int device_;
  cudaStream_t stream_ = nullptr;
  void* scratch_ = nullptr;  // one float on the device, for Barrier
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(Communicator& bootstrap,
                                                                     int device) {
  int devices = 0;
  RETURN_IF_ERROR(COMM_CUDA_STATUS(cudaGetDeviceCount(&devices)));
  if (device < 0 || device >= devices) {
    return absl::InvalidArgumentError(
        absl::StrCat("device ", device, " out of range: ", devices, " CUDA devices"));
  }
  RETURN_IF_ERROR(COMM_CUDA_STATUS(cudaSetDevice(device)));
  // The id travels as raw bytes in an i32 buffer (its size is a multiple of 4).
  static_assert(sizeof(ncclUniqueId) % sizeof(int32_t) == 0);
  int32_t id_words[sizeof(ncclUniqueId) / sizeof(int32_t)] = {};
  ncclUniqueId id;
  if (bootstrap.rank() == 0) {
    RETURN_IF_ERROR(NcclStatus(ncclGetUniqueId(&id), nullptr, "ncclGetUniqueId"));
    std::memcpy(id_words, &id, sizeof(id));
  }
  RETURN_IF_ERROR(bootstrap.Broadcast(HostBuffer(absl::Span<int32_t>(id_words)), 0));
  std::memcpy(&id, id_words, sizeof(id));
  ncclConfig_t config = NonBlockingConfig();
  ncclComm_t comm = nullptr;
  RETURN_IF_ERROR(
      NcclStatus(ncclCommInitRankConfig(&comm, bootstrap.size(), id, bootstrap.rank(), &config),
                 comm, "ncclCommInitRankConfig"));
  const absl::Status ready =
      AwaitReady(comm, absl::Now() + bootstrap.timeout(), "ncclCommInitRankConfig");
  if (!ready.ok()) {
    ncclCommAbort(comm);
    return ready;
  }
  return NcclCommunicator::Create(comm, device, bootstrap.options());
}

}  // namespace comm
