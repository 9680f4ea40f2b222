#include "comm/local_communicator.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "comm/internal/local_world.h"
#include "comm/internal/reduce.h"
#include "core/check.h"
#include "core/status_macros.h"

namespace comm {
namespace {

using internal::LocalWorld;

// Offset, in elements, of peer `peer`'s part in a buffer laid out by `counts`.
size_t Offset(absl::Span<const size_t> counts, int peer) {
  size_t offset = 0;
  for (int p = 0; p < peer; ++p) offset += counts[p];
  return offset;
}

const char* At(ConstBuffer buffer, size_t element) {
  return static_cast<const char*>(buffer.data) + element * core::SizeOf(buffer.dtype);
}
char* At(Buffer buffer, size_t element) {
  return static_cast<char*>(buffer.data) + element * core::SizeOf(buffer.dtype);
}

void Copy(void* dst, const void* src, size_t bytes) {
  if (bytes > 0 && dst != src) std::memcpy(dst, src, bytes);
}

class LocalCommunicator : public Communicator {
 public:
  LocalCommunicator(std::shared_ptr<LocalWorld> world, int rank)
      : Communicator(rank, world->size()), world_(std::move(world)) {}
  ~LocalCommunicator() override { world_->Leave(rank()); }

  absl::string_view backend() const override { return "local"; }
  bool Supports(MemoryKind memory) const override { return memory == MemoryKind::kHost; }

 protected:
  absl::Status DoBatchP2P(absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs,
                          absl::Time deadline) override {
    return world_->Exchange(rank(), sends, recvs, deadline);
  }

  // Reduce-scatter then all-gather: rank r reduces slice r of every input (in rank order, so all
  // ranks agree bit for bit), then every rank copies all slices into its output.
  absl::Status DoAllReduce(ConstBuffer input, Buffer output, ReduceOp op,
                           absl::Time deadline) override {
    Post() = {.input = input, .output = output};
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "AllReduce"));
    const absl::Status status = CheckSameShape(input, "AllReduce");
    const size_t begin = SliceBegin(input.count, rank());
    const size_t count = SliceBegin(input.count, rank() + 1) - begin;
    // In place, the output is another rank's input until the next barrier: reduce aside.
    std::vector<char> scratch;
    char* reduced = At(output, begin);
    if (input.data == output.data) {
      scratch.resize(count * core::SizeOf(input.dtype));
      reduced = scratch.data();
    }
    if (status.ok()) {
      Copy(reduced, At(world_->post(0).input, begin), count * core::SizeOf(input.dtype));
      for (int r = 1; r < size(); ++r) {
        internal::ReduceInto(op, input.dtype, At(world_->post(r).input, begin), reduced, count);
      }
      Post().reduced = reduced;
    }
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "AllReduce"));
    if (status.ok()) {
      for (int r = 0; r < size(); ++r) {
        const size_t slice = SliceBegin(input.count, r);
        Copy(At(output, slice), world_->post(r).reduced,
             (SliceBegin(input.count, r + 1) - slice) * core::SizeOf(input.dtype));
      }
    }
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "AllReduce"));
    return status;
  }

  absl::Status DoAllGather(ConstBuffer input, Buffer output, absl::Time deadline) override {
    Post() = {.input = input, .output = output};
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "AllGather"));
    const absl::Status status = CheckSameShape(input, "AllGather");
    if (status.ok()) {
      for (int r = 0; r < size(); ++r) {
        Copy(At(output, r * input.count), world_->post(r).input.data, input.bytes());
      }
    }
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "AllGather"));
    return status;
  }

  absl::Status DoAllToAll(ConstBuffer input, absl::Span<const size_t> send_counts, Buffer output,
                          absl::Span<const size_t> recv_counts, absl::Time deadline) override {
    Post() = {
        .input = input, .output = output, .send_counts = send_counts, .recv_counts = recv_counts};
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "AllToAll"));
    absl::Status status;
    for (int r = 0; r < size() && status.ok(); ++r) {
      const LocalWorld::Post& peer = world_->post(r);
      if (peer.input.dtype != input.dtype || peer.send_counts[rank()] != recv_counts[r]) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "AllToAll: rank ", r, " sends ", Shape(peer.send_counts[rank()], peer.input.dtype),
            " to rank ", rank(), " which expects ", Shape(recv_counts[r], input.dtype)));
      }
    }
    if (status.ok()) {
      for (int r = 0; r < size(); ++r) {
        const LocalWorld::Post& peer = world_->post(r);
        Copy(At(output, Offset(recv_counts, r)), At(peer.input, Offset(peer.send_counts, rank())),
             recv_counts[r] * core::SizeOf(input.dtype));
      }
    }
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "AllToAll"));
    return status;
  }

  absl::Status DoBroadcast(Buffer buffer, int root, absl::Time deadline) override {
    Post() = {.input = buffer};
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "Broadcast"));
    const absl::Status status = CheckSameShape(world_->post(root).input, "Broadcast");
    if (status.ok()) Copy(buffer.data, world_->post(root).input.data, buffer.bytes());
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "Broadcast"));
    return status;
  }

  absl::Status DoBarrier(absl::Time deadline) override {
    return world_->Barrier(rank(), deadline, "Barrier");
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key,
                                                        absl::Time deadline) override {
    Post() = {.color = color, .key = key};
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "Split"));
    std::vector<std::pair<int, int>> members;  // (key, old rank) of this rank's group
    for (int r = 0; r < size(); ++r) {
      if (world_->post(r).color == color) members.emplace_back(world_->post(r).key, r);
    }
    std::sort(members.begin(), members.end());
    const int leader = members.front().second;
    if (leader == rank()) Post().child = std::make_shared<LocalWorld>(members.size());
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "Split"));
    std::shared_ptr<LocalWorld> child = world_->post(leader).child;
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "Split"));
    const int new_rank =
        std::find(members.begin(), members.end(), std::make_pair(key, rank())) - members.begin();
    return std::make_unique<LocalCommunicator>(std::move(child), new_rank);
  }

  void OnAbort() override { world_->Abort(rank(), aborted()); }

 private:
  LocalWorld::Post& Post() { return world_->post(rank()); }

  // First element of rank r's slice when `count` elements are cut into size() slices.
  size_t SliceBegin(size_t count, int r) const { return count * r / size(); }

  // INVALID_ARGUMENT unless every rank's input has the count and dtype of `expected`.
  absl::Status CheckSameShape(ConstBuffer expected, absl::string_view what) {
    for (int r = 0; r < size(); ++r) {
      const ConstBuffer peer = world_->post(r).input;
      if (peer.count != expected.count || peer.dtype != expected.dtype) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": rank ", r, " passed ", Shape(peer.count, peer.dtype), ", rank ",
                         rank(), " expected ", Shape(expected.count, expected.dtype)));
      }
    }
    return absl::OkStatus();
  }

  std::shared_ptr<LocalWorld> world_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> CreateLocalGroup(int size) {
  DSMOE_CHECK(size >= 1, "CreateLocalGroup: size = ", size);
  auto world = std::make_shared<LocalWorld>(size);
  std::vector<std::unique_ptr<Communicator>> group;
  for (int r = 0; r < size; ++r) group.push_back(std::make_unique<LocalCommunicator>(world, r));
  return group;
}

std::vector<absl::Status> RunLocalRanks(int size,
                                        const std::function<absl::Status(Communicator&)>& body) {
  std::vector<std::unique_ptr<Communicator>> group = CreateLocalGroup(size);
  std::vector<absl::Status> statuses(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      statuses[r] = body(*group[r]);
      group[r].reset();
    });
  }
  for (std::thread& thread : threads) thread.join();
  return statuses;
}

}  // namespace comm
