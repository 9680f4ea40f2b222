// What one rank asked a collective call to do, so that ranks can compare their calls before
// touching any buffer: the call's kind and the arguments every rank must agree on (root, reduce
// op, per-rank count, dtype). The local backend compares these in shared memory; the mpi backend
// exchanges them (encoded as integers) in checked mode. Arguments that legitimately differ
// between ranks (AllToAll's per-peer counts, Split's color and key) are not part of a Call.
#ifndef COMM_INTERNAL_CALL_H_
#define COMM_INTERNAL_CALL_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "comm/buffer.h"
#include "core/dtype.h"

namespace comm::internal {

enum class CallKind : uint8_t {
  kAllReduce,
  kAllGather,
  kAllToAll,
  kBroadcast,
  kBarrier,
  kSplit,
  kReduceScatter,
};

struct Call {
  CallKind kind = CallKind::kBarrier;
  int root = -1;                 // Broadcast only
  ReduceOp op = ReduceOp::kSum;  // AllReduce and ReduceScatter only
  size_t count = 0;  // per-rank elements: AllReduce, AllGather, Broadcast; ReduceScatter's input
  core::DType dtype = core::DType::kF32;  // every kind that moves data

  // Fields a kind does not use keep their defaults, so that == compares only what matters.
  static Call AllReduce(ConstBuffer input, ReduceOp op);
  static Call AllGather(ConstBuffer input);
  static Call AllToAll(ConstBuffer input);
  static Call Broadcast(ConstBuffer buffer, int root);
  static Call Barrier();
  static Call Split();
  static Call ReduceScatter(ConstBuffer input, ReduceOp op);

  friend bool operator==(const Call&, const Call&) = default;
};

// "AllReduce(sum, 4 x f32)", "Broadcast(root 1, 4 x f32)", "AllToAll(i64)", "Barrier()".
std::string Describe(const Call& call);

// OK if every rank's call equals rank 0's; else INVALID_ARGUMENT naming the first rank whose call
// differs and both calls. Every rank that compares the same calls gets the same verdict (and
// message), so all of them fail together and stay in step.
absl::Status CompareCalls(absl::Span<const Call> calls);

// A Call as a fixed number of integers, for exchange between processes; Decode of an encoding
// that no Call produces gives a Call whose Describe says so.
inline constexpr int kEncodedCallSize = 5;
using EncodedCall = std::array<int64_t, kEncodedCallSize>;
EncodedCall Encode(const Call& call);
// Decodes `calls` (kEncodedCallSize integers per rank) and compares them as CompareCalls does.
absl::Status CompareEncodedCalls(absl::Span<const int64_t> calls);

}  // namespace comm::internal

#endif  // COMM_INTERNAL_CALL_H_
