#include "comm/internal/conformance.h"

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

// OK if `status` is INVALID_ARGUMENT and its message contains each of `names`.
absl::Status ExpectInvalid(const Communicator& comm, absl::string_view what,
                           const absl::Status& status, std::vector<std::string> names) {
  bool named = true;
  for (const std::string& name : names) named = named && absl::StrContains(status.message(), name);
  if (absl::IsInvalidArgument(status) && named) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, " on rank ", comm.rank(), ": got ",
                                          status.ToString(), ", want INVALID_ARGUMENT naming ",
                                          absl::StrJoin(names, " and ")));
}

// A collective that works: every rank's rank + 1 summed.
absl::Status ExpectUsable(Communicator& comm, TestMemory& memory, absl::string_view after) {
  const Buffer value = Make<int32_t>(memory, {comm.rank() + 1});
  RETURN_IF_ERROR(comm.AllReduce(value, value, ReduceOp::kSum));
  const int64_t n = comm.size();
  return Expect<int32_t>(memory, comm, absl::StrCat("AllReduce after ", after), value,
                         {n * (n + 1) / 2});
}

// Rank 0 runs `first`, the others `others`; every rank must get INVALID_ARGUMENT naming `names`,
// leave each of `untouched` (filled with -1 f32) as it was, and then still work.
absl::Status ExpectMismatch(Communicator& comm, TestMemory& memory, absl::string_view what,
                            const std::function<absl::Status()>& first,
                            const std::function<absl::Status()>& others,
                            std::vector<std::string> names, std::vector<Buffer> untouched) {
  const absl::Status status = comm.rank() == 0 ? first() : others();
  RETURN_IF_ERROR(ExpectInvalid(comm, what, status, std::move(names)));
  for (const Buffer& buffer : untouched) {
    RETURN_IF_ERROR(Expect<float>(memory, comm, absl::StrCat(what, ": output"), buffer,
                                  std::vector<int64_t>(buffer.count, -1)));
  }
  return ExpectUsable(comm, memory, what);
}

// Rank 0 sends `sent`, rank 1 receives into `received` (non-blocking when `start`); rank 1 must
// get INVALID_ARGUMENT naming rank 0 and the receive buffer's shape; rank 0 may see OK (mpi: a
// sender learns nothing) or the same error (local). Then every rank still works.
absl::Status ExpectReceiveMismatch(Communicator& comm, TestMemory& memory, absl::string_view what,
                                   Buffer sent, Buffer received, bool start) {
  constexpr int kTag = 21;
  absl::Status status;
  if (comm.rank() == 0) {
    status = comm.Send(sent, 1, kTag);
  } else if (comm.rank() == 1) {
    const RecvOp recv{received, 0, kTag};
    if (start) {
      ASSIGN_OR_RETURN(std::unique_ptr<Request> request, comm.StartBatchP2P({}, {&recv, 1}));
      status = request->Wait();
    } else {
      status = comm.Recv(received, 0, kTag);
    }
  }
  const std::string shape = Shape(received.count, received.dtype);
  if (comm.rank() == 1 || (comm.rank() == 0 && !status.ok())) {
    RETURN_IF_ERROR(ExpectInvalid(comm, what, status, {"rank 0", shape}));
  }
  RETURN_IF_ERROR(comm.Barrier());
  return ExpectUsable(comm, memory, what);
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
  // ReduceScatter of the same input: rank 0's part empty when there are others, the rest split
  // unevenly.
  std::vector<size_t> counts(n, 0);
  const int64_t parts = n > 1 ? n - 1 : 1;
  for (int64_t p = n - parts; p < n; ++p) {
    counts[p] = kCount / parts + (p - (n - parts) < static_cast<int64_t>(kCount % parts) ? 1 : 0);
  }
  size_t offset = 0;
  for (int r = 0; r < comm.rank(); ++r) offset += counts[r];
  const size_t mine = counts[comm.rank()];
  const Buffer part = Filled<T>(memory, mine, -1);
  for (const auto& [op, want, name] : {std::tuple(ReduceOp::kSum, &sum, "ReduceScatter sum"),
                                       std::tuple(ReduceOp::kMax, &max, "ReduceScatter max")}) {
    RETURN_IF_ERROR(comm.ReduceScatter(in, part, counts, op));
    RETURN_IF_ERROR(
        Expect<T>(memory, comm, name, part,
                  std::vector<int64_t>(want->begin() + offset, want->begin() + offset + mine)));
  }
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
  RETURN_IF_ERROR(Expect<int64_t>(memory, comm, "AllToAll", out, want));

  // Non-blocking: two all-to-alls in flight at once (the second with the counts reversed, so a
  // mix-up of the two shows), waited in reverse order.
  const Buffer out_started = Filled<int64_t>(memory, want.size(), -1);
  const Buffer back = Filled<int64_t>(memory, input.size(), -1);
  ASSIGN_OR_RETURN(std::unique_ptr<Request> first,
                   comm.StartAllToAll(in, send_counts, out_started, recv_counts));
  ASSIGN_OR_RETURN(std::unique_ptr<Request> second,
                   comm.StartAllToAll(out, recv_counts, back, send_counts));
  RETURN_IF_ERROR(second->Wait());
  RETURN_IF_ERROR(first->Wait());
  RETURN_IF_ERROR(Expect<int64_t>(memory, comm, "StartAllToAll", out_started, want));
  return Expect<int64_t>(memory, comm, "StartAllToAll back", back, input);
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

absl::Status CheckMismatchesAreCaught(Communicator& comm, TestMemory& memory) {
  if (comm.size() < 2) return absl::OkStatus();
  const int n = comm.size();
  const ReduceOp kSum = ReduceOp::kSum;
  // Fresh buffers of -1 for every case, so that a case that wrongly runs shows in its output.
  auto f32 = [&](size_t count) { return Filled<float>(memory, count, -1); };

  {
    const Buffer a = f32(4), b = f32(4);
    RETURN_IF_ERROR(ExpectMismatch(
        comm, memory, "AllReduce against Broadcast", [&] { return comm.AllReduce(a, b, kSum); },
        [&] { return comm.Broadcast(b, 0); },
        {"AllReduce(sum, 4 x f32)", "Broadcast(root 0, 4 x f32)"}, {b}));
  }
  {
    const Buffer a = f32(4), b = f32(4), gathered = f32(4 * n);
    RETURN_IF_ERROR(ExpectMismatch(
        comm, memory, "AllReduce against AllGather", [&] { return comm.AllReduce(a, b, kSum); },
        [&] { return comm.AllGather(a, gathered); },
        {"AllReduce(sum, 4 x f32)", "AllGather(4 x f32)"}, {b, gathered}));
  }
  {
    const Buffer a = f32(4), b = f32(4);
    RETURN_IF_ERROR(ExpectMismatch(
        comm, memory, "Barrier against AllReduce", [&] { return comm.Barrier(); },
        [&] { return comm.AllReduce(a, b, kSum); }, {"Barrier()", "AllReduce(sum, 4 x f32)"}, {b}));
  }
  {
    const Buffer b = f32(4);
    RETURN_IF_ERROR(ExpectMismatch(
        comm, memory, "Broadcast roots", [&] { return comm.Broadcast(b, 0); },
        [&] { return comm.Broadcast(b, 1); },
        {"Broadcast(root 0, 4 x f32)", "Broadcast(root 1, 4 x f32)"}, {b}));
  }
  {
    const Buffer a = f32(4), b = f32(4);
    RETURN_IF_ERROR(ExpectMismatch(
        comm, memory, "AllReduce ops", [&] { return comm.AllReduce(a, b, kSum); },
        [&] { return comm.AllReduce(a, b, ReduceOp::kMax); },
        {"AllReduce(sum, 4 x f32)", "AllReduce(max, 4 x f32)"}, {b}));
  }
  {
    const Buffer a4 = f32(4), b4 = f32(4), a5 = f32(5), b5 = f32(5);
    RETURN_IF_ERROR(ExpectMismatch(
        comm, memory, "AllReduce counts", [&] { return comm.AllReduce(a4, b4, kSum); },
        [&] { return comm.AllReduce(a5, b5, kSum); },
        {"AllReduce(sum, 4 x f32)", "AllReduce(sum, 5 x f32)"}, {b4, b5}));
  }
  {
    const Buffer a = f32(4), b = f32(4);
    const Buffer ints = Filled<int32_t>(memory, 4, 1);
    RETURN_IF_ERROR(ExpectMismatch(
        comm, memory, "AllReduce dtypes", [&] { return comm.AllReduce(a, b, kSum); },
        [&] { return comm.AllReduce(ints, ints, kSum); },
        {"AllReduce(sum, 4 x f32)", "AllReduce(sum, 4 x i32)"}, {b}));
  }
  {
    const Buffer a3 = f32(3), out3 = f32(3 * n), a4 = f32(4), out4 = f32(4 * n);
    RETURN_IF_ERROR(ExpectMismatch(
        comm, memory, "AllGather counts", [&] { return comm.AllGather(a4, out4); },
        [&] { return comm.AllGather(a3, out3); }, {"AllGather(4 x f32)", "AllGather(3 x f32)"},
        {out3, out4}));
  }
  {
    RETURN_IF_ERROR(ExpectMismatch(
        comm, memory, "Split against Barrier", [&] { return comm.Split(0, comm.rank()).status(); },
        [&] { return comm.Barrier(); }, {"Split()", "Barrier()"}, {}));
  }
  {
    // Rank 0 expects two elements from rank 1, which sends one; every other pair agrees.
    std::vector<size_t> send_counts(n, 1), recv_counts(n, 1);
    if (comm.rank() == 0) recv_counts[1] = 2;
    const Buffer in = f32(n), out = f32(n + 1);
    auto all_to_all = [&] { return comm.AllToAll(in, send_counts, out, recv_counts); };
    RETURN_IF_ERROR(ExpectMismatch(comm, memory, "AllToAll counts", all_to_all, all_to_all,
                                   {"rank 1 sends 1 x f32 to rank 0", "expects 2 x f32"}, {out}));
  }
  {
    const Buffer a = f32(n), part = f32(1), b = f32(n);
    const std::vector<size_t> ones(n, 1);
    RETURN_IF_ERROR(ExpectMismatch(
        comm, memory, "ReduceScatter against AllReduce",
        [&] { return comm.ReduceScatter(a, part, ones, kSum); },
        [&] { return comm.AllReduce(a, b, kSum); },
        {"ReduceScatter(sum, " + std::to_string(n) + " x f32)",
         "AllReduce(sum, " + std::to_string(n) + " x f32)"},
        {part, b}));
  }
  {
    // The same total, split differently: rank 0 keeps two elements where the others say one.
    std::vector<size_t> counts(n, 1);
    counts[comm.rank() == 0 ? 0 : 1] = 2;
    counts[comm.rank() == 0 ? 1 : 0] = 0;
    const Buffer a = f32(n), part = f32(counts[comm.rank()]);
    auto reduce_scatter = [&] { return comm.ReduceScatter(a, part, counts, kSum); };
    RETURN_IF_ERROR(ExpectMismatch(comm, memory, "ReduceScatter counts", reduce_scatter,
                                   reduce_scatter, {"mismatched ReduceScatter counts"}, {part}));
  }
  RETURN_IF_ERROR(ExpectReceiveMismatch(comm, memory, "short message", f32(3), f32(4), false));
  RETURN_IF_ERROR(ExpectReceiveMismatch(comm, memory, "long message", f32(5), f32(4), false));
  RETURN_IF_ERROR(ExpectReceiveMismatch(comm, memory, "f32 received as i64", f32(4),
                                        Filled<int64_t>(memory, 4, -1), true));
  return absl::OkStatus();
}

}  // namespace comm::internal
