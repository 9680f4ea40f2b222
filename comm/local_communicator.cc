#include "comm/local_communicator.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "comm/internal/call.h"
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

// A posted batch: its sends are visible to their receivers; Wait receives and completes.
class LocalRequest : public Request {
 public:
  LocalRequest(Communicator* comm, std::shared_ptr<LocalWorld> world, int rank,
               std::vector<LocalWorld::PostedSend> posted, absl::Span<const RecvOp> recvs)
      : Request(comm),
        world_(std::move(world)),
        rank_(rank),
        posted_(std::move(posted)),
        recvs_(recvs.begin(), recvs.end()),
        sequences_(world_->PostReceives(rank, recvs)) {}
  ~LocalRequest() override {
    if (!completed_) world_->Withdraw(posted_);
  }

 protected:
  absl::Status DoWait(absl::Time deadline) override {
    completed_ = true;
    return world_->Complete(rank_, posted_, recvs_, sequences_, deadline);
  }

 private:
  std::shared_ptr<LocalWorld> world_;
  const int rank_;
  std::vector<LocalWorld::PostedSend> posted_;
  std::vector<RecvOp> recvs_;
  std::vector<uint64_t> sequences_;
  bool completed_ = false;
};

class LocalCommunicator : public Communicator {
 public:
  LocalCommunicator(std::shared_ptr<LocalWorld> world, int rank, const CommOptions& options)
      : Communicator(rank, world->size(), options), world_(std::move(world)) {}
  ~LocalCommunicator() override { world_->Leave(rank()); }

  absl::string_view backend() const override { return "local"; }
  bool Supports(core::Device device) const override { return device == core::Device::kHost; }

 protected:
  absl::Status DoBatchP2P(absl::Span<const SendOp> sends, absl::Span<const RecvOp> recvs,
                          absl::Time deadline) override {
    return world_->Exchange(rank(), sends, recvs, deadline);
  }

  std::unique_ptr<Request> DoStartBatchP2P(absl::Span<const SendOp> sends,
                                           absl::Span<const RecvOp> recvs) override {
    absl::StatusOr<std::vector<LocalWorld::PostedSend>> posted = world_->PostSends(rank(), sends);
    // A failed group: nothing posted, and Wait reports the failure through a deferred batch.
    if (!posted.ok()) return Communicator::DoStartBatchP2P(sends, recvs);
    return std::make_unique<LocalRequest>(this, world_, rank(), *std::move(posted), recvs);
  }

  // Reduce-scatter then all-gather: rank r reduces slice r of every input (in rank order, so all
  // ranks agree bit for bit), then every rank copies all slices into its output.
  absl::Status DoAllReduce(ConstBuffer input, Buffer output, ReduceOp op,
                           absl::Time deadline) override {
    Post() = {.input = input, .output = output};
    RETURN_IF_ERROR(world_->Meet(rank(), internal::Call::AllReduce(input, op), deadline));
    const size_t begin = SliceBegin(input.count, rank());
    const size_t count = SliceBegin(input.count, rank() + 1) - begin;
    // In place, the output is another rank's input until the next barrier: reduce aside.
    std::vector<char> scratch;
    char* reduced = At(output, begin);
    if (input.data == output.data) {
      scratch.resize(count * core::SizeOf(input.dtype));
      reduced = scratch.data();
    }
    Copy(reduced, At(world_->post(0).input, begin), count * core::SizeOf(input.dtype));
    for (int r = 1; r < size(); ++r) {
      internal::ReduceInto(op, input.dtype, At(world_->post(r).input, begin), reduced, count);
    }
    Post().reduced = reduced;
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "AllReduce"));
    for (int r = 0; r < size(); ++r) {
      const size_t slice = SliceBegin(input.count, r);
      Copy(At(output, slice), world_->post(r).reduced,
           (SliceBegin(input.count, r + 1) - slice) * core::SizeOf(input.dtype));
    }
    return world_->Barrier(rank(), deadline, "AllReduce");
  }

  // Rank r reduces its part of every input in rank order, as AllReduce reduces its slice.
  absl::Status DoReduceScatter(ConstBuffer input, Buffer output, absl::Span<const size_t> counts,
                               ReduceOp op, absl::Time deadline) override {
    Post() = {.input = input, .output = output, .send_counts = counts};
    RETURN_IF_ERROR(world_->Meet(rank(), internal::Call::ReduceScatter(input, op), deadline));
    // Every rank compares every rank's counts, so that all reach the same verdict.
    absl::Status status;
    for (int r = 1; r < size() && status.ok(); ++r) {
      const absl::Span<const size_t> theirs = world_->post(r).send_counts;
      if (!std::equal(theirs.begin(), theirs.end(), world_->post(0).send_counts.begin())) {
        status = absl::InvalidArgumentError(
            absl::StrCat("mismatched ReduceScatter counts: rank 0 has ",
                         absl::StrJoin(world_->post(0).send_counts, " "), ", rank ", r, " has ",
                         absl::StrJoin(theirs, " ")));
      }
    }
    if (status.ok()) {
      const size_t begin = Offset(counts, rank());
      Copy(output.data, At(world_->post(0).input, begin), output.bytes());
      for (int r = 1; r < size(); ++r) {
        internal::ReduceInto(op, input.dtype, At(world_->post(r).input, begin),
                             static_cast<char*>(output.data), output.count);
      }
    }
    RETURN_IF_ERROR(world_->Barrier(rank(), deadline, "ReduceScatter"));
    return status;
  }

  absl::Status DoAllGather(ConstBuffer input, Buffer output, absl::Time deadline) override {
    Post() = {.input = input, .output = output};
    RETURN_IF_ERROR(world_->Meet(rank(), internal::Call::AllGather(input), deadline));
    for (int r = 0; r < size(); ++r) {
      Copy(At(output, r * input.count), world_->post(r).input.data, input.bytes());
    }
    return world_->Barrier(rank(), deadline, "AllGather");
  }

  absl::Status DoAllToAll(ConstBuffer input, absl::Span<const size_t> send_counts, Buffer output,
                          absl::Span<const size_t> recv_counts, absl::Time deadline) override {
    Post() = {
        .input = input, .output = output, .send_counts = send_counts, .recv_counts = recv_counts};
    RETURN_IF_ERROR(world_->Meet(rank(), internal::Call::AllToAll(input), deadline));
    // Every rank checks every pair, so that all reach the same verdict.
    absl::Status status = CheckAllToAllCounts();
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
    RETURN_IF_ERROR(world_->Meet(rank(), internal::Call::Broadcast(buffer, root), deadline));
    Copy(buffer.data, world_->post(root).input.data, buffer.bytes());
    return world_->Barrier(rank(), deadline, "Broadcast");
  }

  absl::Status DoBarrier(absl::Time deadline) override {
    return world_->Meet(rank(), internal::Call::Barrier(), deadline);
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key,
                                                        absl::Time deadline) override {
    Post() = {.color = color, .key = key};
    RETURN_IF_ERROR(world_->Meet(rank(), internal::Call::Split(), deadline));
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
    return std::make_unique<LocalCommunicator>(std::move(child), new_rank, options());
  }

  void OnAbort() override { world_->Abort(rank(), aborted()); }

 private:
  LocalWorld::Post& Post() { return world_->post(rank()); }

  // First element of rank r's slice when `count` elements are cut into size() slices.
  size_t SliceBegin(size_t count, int r) const { return count * r / size(); }

  // INVALID_ARGUMENT naming the first pair (sender, receiver) of the posted AllToAll whose counts
  // differ: what the sender sends and what the receiver expects.
  absl::Status CheckAllToAllCounts() {
    for (int to = 0; to < size(); ++to) {
      for (int from = 0; from < size(); ++from) {
        const LocalWorld::Post& sender = world_->post(from);
        const LocalWorld::Post& receiver = world_->post(to);
        if (sender.send_counts[to] != receiver.recv_counts[from]) {
          return absl::InvalidArgumentError(absl::StrCat(
              "mismatched AllToAll counts: rank ", from, " sends ",
              Shape(sender.send_counts[to], sender.input.dtype), " to rank ", to,
              ", which expects ", Shape(receiver.recv_counts[from], receiver.output.dtype)));
        }
      }
    }
    return absl::OkStatus();
  }

  std::shared_ptr<LocalWorld> world_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> CreateLocalGroup(int size, const CommOptions& options) {
  DSMOE_CHECK(size >= 1, "CreateLocalGroup: size = ", size);
  const absl::Status valid = ValidateCommOptions(options);
  DSMOE_CHECK(valid.ok(), "CreateLocalGroup: ", valid.message());
  auto world = std::make_shared<LocalWorld>(size);
  std::vector<std::unique_ptr<Communicator>> group;
  for (int r = 0; r < size; ++r) {
    group.push_back(std::make_unique<LocalCommunicator>(world, r, options));
  }
  return group;
}

std::vector<std::unique_ptr<Communicator>> CreateLocalGroup(int size) {
  const absl::StatusOr<CommOptions> options = CommOptionsFromFlags();
  DSMOE_CHECK(options.ok(), "CreateLocalGroup: ", options.status().message());
  return CreateLocalGroup(size, *options);
}

std::vector<absl::Status> RunLocalRanks(int size, const CommOptions& options,
                                        const std::function<absl::Status(Communicator&)>& body) {
  DSMOE_CHECK(size >= 1, "RunLocalRanks: size = ", size);
  if (absl::Status valid = ValidateCommOptions(options); !valid.ok()) {
    return std::vector<absl::Status>(size, valid);
  }
  std::vector<std::unique_ptr<Communicator>> group = CreateLocalGroup(size, options);
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

std::vector<absl::Status> RunLocalRanks(int size,
                                        const std::function<absl::Status(Communicator&)>& body) {
  const absl::StatusOr<CommOptions> options = CommOptionsFromFlags();
  if (!options.ok()) return std::vector<absl::Status>(size, options.status());
  return RunLocalRanks(size, *options, body);
}

}  // namespace comm
