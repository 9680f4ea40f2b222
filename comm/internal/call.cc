#include "comm/internal/call.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace comm::internal {
namespace {

constexpr int kNumKinds = static_cast<int>(CallKind::kReduceScatter) + 1;
constexpr int kNumDTypes = static_cast<int>(core::DType::kU8) + 1;

const char* KindName(CallKind kind) {
  switch (kind) {
    case CallKind::kAllReduce:
      return "AllReduce";
    case CallKind::kAllGather:
      return "AllGather";
    case CallKind::kAllToAll:
      return "AllToAll";
    case CallKind::kBroadcast:
      return "Broadcast";
    case CallKind::kBarrier:
      return "Barrier";
    case CallKind::kSplit:
      return "Split";
    case CallKind::kReduceScatter:
      return "ReduceScatter";
  }
  return "?";
}

// The message both CompareCalls and CompareEncodedCalls give for a difference between rank 0's
// call and rank `other`'s.
absl::Status Mismatch(const std::string& first, int other, const std::string& theirs) {
  return absl::InvalidArgumentError(absl::StrCat("mismatched collective calls: rank 0 called ",
                                                 first, ", rank ", other, " called ", theirs));
}

// Describe of an encoding, which may come from a process that is not running our code.
std::string DescribeEncoded(absl::Span<const int64_t> code) {
  const bool valid = code[0] >= 0 && code[0] < kNumKinds && code[2] >= 0 && code[2] <= 1 &&
                     code[3] >= 0 && code[4] >= 0 && code[4] < kNumDTypes && code[1] >= -1 &&
                     code[1] <= INT32_MAX;
  if (!valid) return absl::StrCat("an unknown call (", absl::StrJoin(code, " "), ")");
  Call call;
  call.kind = static_cast<CallKind>(code[0]);
  call.root = static_cast<int>(code[1]);
  call.op = static_cast<ReduceOp>(code[2]);
  call.count = static_cast<size_t>(code[3]);
  call.dtype = static_cast<core::DType>(code[4]);
  return Describe(call);
}

}  // namespace

Call Call::AllReduce(ConstBuffer input, ReduceOp op) {
  return {.kind = CallKind::kAllReduce, .op = op, .count = input.count, .dtype = input.dtype};
}
Call Call::AllGather(ConstBuffer input) {
  return {.kind = CallKind::kAllGather, .count = input.count, .dtype = input.dtype};
}
Call Call::AllToAll(ConstBuffer input) {
  return {.kind = CallKind::kAllToAll, .dtype = input.dtype};
}
Call Call::Broadcast(ConstBuffer buffer, int root) {
  return {.kind = CallKind::kBroadcast, .root = root, .count = buffer.count, .dtype = buffer.dtype};
}
Call Call::Barrier() { return {.kind = CallKind::kBarrier}; }
Call Call::Split() { return {.kind = CallKind::kSplit}; }
Call Call::ReduceScatter(ConstBuffer input, ReduceOp op) {
  return {.kind = CallKind::kReduceScatter, .op = op, .count = input.count, .dtype = input.dtype};
}

std::string Describe(const Call& call) {
  const std::string shape = Shape(call.count, call.dtype);
  switch (call.kind) {
    case CallKind::kAllReduce:
      return absl::StrCat("AllReduce(", call.op == ReduceOp::kSum ? "sum" : "max", ", ", shape,
                          ")");
    case CallKind::kAllGather:
      return absl::StrCat("AllGather(", shape, ")");
    case CallKind::kReduceScatter:
      return absl::StrCat("ReduceScatter(", call.op == ReduceOp::kSum ? "sum" : "max", ", ", shape,
                          ")");
    case CallKind::kAllToAll:
      return absl::StrCat("AllToAll(", core::Name(call.dtype), ")");
    case CallKind::kBroadcast:
      return absl::StrCat("Broadcast(root ", call.root, ", ", shape, ")");
    case CallKind::kBarrier:
    case CallKind::kSplit:
      return absl::StrCat(KindName(call.kind), "()");
  }
  return "?";
}

absl::Status CompareCalls(absl::Span<const Call> calls) {
  for (size_t r = 1; r < calls.size(); ++r) {
    if (!(calls[r] == calls[0])) {
      return Mismatch(Describe(calls[0]), static_cast<int>(r), Describe(calls[r]));
    }
  }
  return absl::OkStatus();
}

EncodedCall Encode(const Call& call) {
  return {static_cast<int64_t>(call.kind), call.root, static_cast<int64_t>(call.op),
          static_cast<int64_t>(call.count), static_cast<int64_t>(call.dtype)};
}

absl::Status CompareEncodedCalls(absl::Span<const int64_t> calls) {
  const absl::Span<const int64_t> first = calls.subspan(0, kEncodedCallSize);
  for (size_t r = 1; r * kEncodedCallSize < calls.size(); ++r) {
    const absl::Span<const int64_t> theirs = calls.subspan(r * kEncodedCallSize, kEncodedCallSize);
    if (theirs != first) {
      return Mismatch(DescribeEncoded(first), static_cast<int>(r), DescribeEncoded(theirs));
    }
  }
  return absl::OkStatus();
}

}  // namespace comm::internal
