#include "comm/internal/conformance.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "core/status_macros.h"

namespace comm::internal {
namespace {

template <typename T>
T FromInt(int64_t value) {
  if constexpr (std::is_same_v<T, core::BFloat16>) {
    return core::ToBFloat16(static_cast<float>(value));
  } else {
    return static_cast<T>(value);
  }
}

template <typename T>
int64_t ToInt(T value) {
  if constexpr (std::is_same_v<T, core::BFloat16>) {
    return static_cast<int64_t>(core::ToFloat(value));
  } else {
    return static_cast<int64_t>(value);
  }
}

// A buffer in `memory` holding `values`.
template <typename T>
Buffer Make(TestMemory& memory, const std::vector<int64_t>& values) {
  std::vector<T> host;
  for (int64_t value : values) host.push_back(FromInt<T>(value));
  void* data = memory.Allocate(host.size() * sizeof(T));
  memory.CopyIn(data, host.data(), host.size() * sizeof(T));
  return Buffer{data, host.size(), core::DTypeOf<T>(), memory.kind()};
}

// A buffer in `memory` of `count` elements of T, all `fill`.
template <typename T>
Buffer Filled(TestMemory& memory, size_t count, int64_t fill) {
  return Make<T>(memory, std::vector<int64_t>(count, fill));
}

// OK if `buffer` holds exactly `want`, else an error naming `what` and the first difference.
template <typename T>
absl::Status Expect(TestMemory& memory, const Communicator& comm, absl::string_view what,
                    Buffer buffer, const std::vector<int64_t>& want) {
  std::vector<T> host(buffer.count);
  memory.CopyOut(host.data(), buffer.data, buffer.bytes());
  if (host.size() != want.size()) {
    return absl::InternalError(absl::StrCat(what, " on rank ", comm.rank(), ": ", host.size(),
                                            " elements, want ", want.size()));
  }
  for (size_t i = 0; i < want.size(); ++i) {
    if (ToInt(host[i]) != want[i]) {
      return absl::InternalError(absl::StrCat(
          what, " (", Shape(want.size(), core::DTypeOf<T>()), ") on rank ", comm.rank(), " of ",
          comm.size(), ": element ", i, " is ", ToInt(host[i]), ", want ", want[i]));
    }
  }
  return absl::OkStatus();
}

std::vector<int64_t> Sequence(size_t count, int64_t start) {
  std::vector<int64_t> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = start + static_cast<int64_t>(i);
  return values;
}

template <typename T>
absl::Status CheckAllReduceOf(Communicator& comm, TestMemory& memory, int64_t scale) {
  constexpr size_t kCount = 33;
  const int64_t n = comm.size();
  std::vector<int64_t> input(kCount), sum(kCount), max(kCount);
  for (size_t i = 0; i < kCount; ++i) {
    const int64_t base = static_cast<int64_t>(i % 7 + 1) * scale;
    input[i] = (comm.rank() + 1) * base;
    sum[i] = base * n * (n + 1) / 2;
    max[i] = base * n;
  }
  const Buffer in = Make<T>(memory, input);
  const Buffer out = Filled<T>(memory, kCount, -1);
  RETURN_IF_ERROR(comm.AllReduce(in, out, ReduceOp::kSum));
  RETURN_IF_ERROR(Expect<T>(memory, comm, "AllReduce sum", out, sum));
  RETURN_IF_ERROR(comm.AllReduce(in, out, ReduceOp::kMax));
  RETURN_IF_ERROR(Expect<T>(memory, comm, "AllReduce max", out, max));
  RETURN_IF_ERROR(comm.AllReduce(in, in, ReduceOp::kSum));
  return Expect<T>(memory, comm, "AllReduce sum in place", in, sum);
}

}  // namespace

void* HostTestMemory::Allocate(size_t bytes) {
  blocks_.emplace_back(bytes + 1, 0);
  return blocks_.back().data();
}

void HostTestMemory::CopyIn(void* dst, const void* host_src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, host_src, bytes);
}

void HostTestMemory::CopyOut(void* host_dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(host_dst, src, bytes);
}

absl::Status CheckPointToPoint(Communicator& comm, TestMemory& memory) {
  constexpr size_t kCount = 37;
  const int n = comm.size();
  const int r = comm.rank();
  const int next = (r + 1) % n;
  const int prev = (r + n - 1) % n;
  if (n > 1) {
    const Buffer out = Make<int32_t>(memory, Sequence(kCount, r * 1000));
    const Buffer in = Filled<int32_t>(memory, kCount, -1);
    if (r % 2 == 0) {
      RETURN_IF_ERROR(comm.Send(out, next, 7));
      RETURN_IF_ERROR(comm.Recv(in, prev, 7));
    } else {
      RETURN_IF_ERROR(comm.Recv(in, prev, 7));
      RETURN_IF_ERROR(comm.Send(out, next, 7));
    }
    RETURN_IF_ERROR(
        Expect<int32_t>(memory, comm, "Send/Recv ring", in, Sequence(kCount, prev * 1000)));
  }
  const Buffer to_next = Make<float>(memory, Sequence(kCount, r * 1000));
  const Buffer to_prev = Make<float>(memory, Sequence(kCount + 1, r * 1000 + 500));
  const Buffer from_prev = Filled<float>(memory, kCount, -1);
  const Buffer from_next = Filled<float>(memory, kCount + 1, -1);
  const SendOp sends[] = {{to_next, next, 1}, {to_prev, prev, 2}};
  const RecvOp recvs[] = {{from_prev, prev, 1}, {from_next, next, 2}};
  RETURN_IF_ERROR(comm.BatchP2P(sends, recvs));
  RETURN_IF_ERROR(Expect<float>(memory, comm, "BatchP2P from previous rank", from_prev,
                                Sequence(kCount, prev * 1000)));
  return Expect<float>(memory, comm, "BatchP2P from next rank", from_next,
                       Sequence(kCount + 1, next * 1000 + 500));
}

absl::Status CheckNonBlockingP2P(Communicator& comm, TestMemory& memory) {
  constexpr size_t kCount = 19;
  constexpr int kMessages = 3;
  const int n = comm.size();
  const int r = comm.rank();
  const int next = (r + 1) % n;
  const int prev = (r + n - 1) % n;
  std::vector<Buffer> from_prev;
  std::vector<std::unique_ptr<Request>> receives;
  for (int i = 0; i < kMessages; ++i) {
    from_prev.push_back(Filled<int32_t>(memory, kCount, -1));
    const RecvOp recv{from_prev.back(), prev, 3};
    ASSIGN_OR_RETURN(receives.emplace_back(), comm.StartBatchP2P({}, {&recv, 1}));
  }
  const Buffer from_next = Filled<float>(memory, kCount + 2, -1);
  const RecvOp recv_next{from_next, next, 4};
  ASSIGN_OR_RETURN(receives.emplace_back(), comm.StartBatchP2P({}, {&recv_next, 1}));
  std::vector<SendOp> sends;
  for (int i = 0; i < kMessages; ++i) {
    sends.push_back({Make<int32_t>(memory, Sequence(kCount, r * 1000 + i * 100)), next, 3});
  }
  sends.push_back({Make<float>(memory, Sequence(kCount + 2, r * 1000 + 7)), prev, 4});
  ASSIGN_OR_RETURN(std::unique_ptr<Request> send_request, comm.StartBatchP2P(sends, {}));
  for (std::unique_ptr<Request>& receive : receives) RETURN_IF_ERROR(receive->Wait());
  RETURN_IF_ERROR(send_request->Wait());
  for (int i = 0; i < kMessages; ++i) {
    RETURN_IF_ERROR(Expect<int32_t>(memory, comm, absl::StrCat("StartBatchP2P message ", i),
                                    from_prev[i], Sequence(kCount, prev * 1000 + i * 100)));
  }
  return Expect<float>(memory, comm, "StartBatchP2P from next rank", from_next,
                       Sequence(kCount + 2, next * 1000 + 7));
}

absl::Status CheckAllReduce(Communicator& comm, TestMemory& memory) {
  RETURN_IF_ERROR(CheckAllReduceOf<float>(comm, memory, 1));
  RETURN_IF_ERROR(CheckAllReduceOf<core::BFloat16>(comm, memory, 1));
  RETURN_IF_ERROR(CheckAllReduceOf<int32_t>(comm, memory, 1000));
  return CheckAllReduceOf<int64_t>(comm, memory, 1'000'000'000);
}

absl::Status CheckAllGather(Communicator& comm, TestMemory& memory) {
  constexpr size_t kCount = 5;
  std::vector<int64_t> want;
  for (int r = 0; r < comm.size(); ++r) {
    for (int64_t value : Sequence(kCount, r * 100)) want.push_back(value);
  }
  const Buffer in32 = Make<int32_t>(memory, Sequence(kCount, comm.rank() * 100));
  const Buffer out32 = Filled<int32_t>(memory, kCount * comm.size(), -1);
  RETURN_IF_ERROR(comm.AllGather(in32, out32));
  RETURN_IF_ERROR(Expect<int32_t>(memory, comm, "AllGather", out32, want));
  const Buffer in16 = Make<core::BFloat16>(memory, Sequence(kCount, comm.rank() * 100));
  const Buffer out16 = Filled<core::BFloat16>(memory, kCount * comm.size(), -1);
  RETURN_IF_ERROR(comm.AllGather(in16, out16));
  // bf16 holds integers exactly up to 256; larger ones are rounded the same on both sides.
  std::vector<int64_t> rounded;
  for (int64_t value : want) rounded.push_back(ToInt(FromInt<core::BFloat16>(value)));
  return Expect<core::BFloat16>(memory, comm, "AllGather", out16, rounded);
}

absl::Status CheckAllToAll(Communicator& comm, TestMemory& memory) {
  const int n = comm.size();
  const int r = comm.rank();
  std::vector<size_t> send_counts(n), recv_counts(n);
  std::vector<int64_t> input, want;
  for (int p = 0; p < n; ++p) {
    send_counts[p] = (r + 2 * p) % 3 + (p == r ? 1 : 0);
    recv_counts[p] = (p + 2 * r) % 3 + (p == r ? 1 : 0);
    for (int64_t value : Sequence(send_counts[p], r * 10000 + p * 100)) input.push_back(value);
    for (int64_t value : Sequence(recv_counts[p], p * 10000 + r * 100)) want.push_back(value);
  }
  const Buffer in = Make<int64_t>(memory, input);
  const Buffer out = Filled<int64_t>(memory, want.size(), -1);
  RETURN_IF_ERROR(comm.AllToAll(in, send_counts, out, recv_counts));
  return Expect<int64_t>(memory, comm, "AllToAll", out, want);
}

absl::Status CheckBroadcast(Communicator& comm, TestMemory& memory) {
  constexpr size_t kCount = 11;
  for (int root = 0; root < comm.size(); ++root) {
    const Buffer buffer = comm.rank() == root ? Make<float>(memory, Sequence(kCount, root * 10))
                                              : Filled<float>(memory, kCount, -1);
    RETURN_IF_ERROR(comm.Broadcast(buffer, root));
    RETURN_IF_ERROR(Expect<float>(memory, comm, absl::StrCat("Broadcast from ", root), buffer,
                                  Sequence(kCount, root * 10)));
  }
  return absl::OkStatus();
}

absl::Status CheckBarrierAndSplit(Communicator& comm, TestMemory& memory) {
  RETURN_IF_ERROR(comm.Barrier());
  const int n = comm.size();
  const int r = comm.rank();
  ASSIGN_OR_RETURN(std::unique_ptr<Communicator> half, comm.Split(r % 2, -r));
  // Same parity, ordered by descending old rank.
  std::vector<int64_t> members;
  for (int q = n - 1; q >= 0; --q) {
    if (q % 2 == r % 2) members.push_back(q);
  }
  int64_t sum = 0;
  int want_rank = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    sum += members[i];
    if (members[i] == r) want_rank = static_cast<int>(i);
  }
  if (half->size() != static_cast<int>(members.size()) || half->rank() != want_rank) {
    return absl::InternalError(absl::StrCat("Split on rank ", r, ": got rank ", half->rank(),
                                            " of ", half->size(), ", want ", want_rank, " of ",
                                            members.size()));
  }
  const Buffer value = Make<int32_t>(memory, {r});
  RETURN_IF_ERROR(half->AllReduce(value, value, ReduceOp::kSum));
  RETURN_IF_ERROR(Expect<int32_t>(memory, comm, "AllReduce after Split", value, {sum}));
  return half->Barrier();
}

}  // namespace comm::internal
