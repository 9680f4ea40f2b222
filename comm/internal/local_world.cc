#include "comm/internal/local_world.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace comm::internal {

bool LocalWorld::WaitUntil(std::unique_lock<std::mutex>& lock, absl::Time deadline) {
  return cv_.wait_until(lock, absl::ToChronoTime(deadline)) == std::cv_status::timeout;
}

LocalWorld::LocalWorld(int size) : size_(size), posts_(size), calls_(size), gone_(size, false) {}

absl::Status LocalWorld::HealthLocked(int peer) const {
  if (!failure_.ok()) return failure_;
  for (int r = 0; r < size_; ++r) {
    if ((peer < 0 || peer == r) && gone_[r]) {
      return absl::UnavailableError(absl::StrCat("rank ", r, " has left the group"));
    }
  }
  return absl::OkStatus();
}

absl::Status LocalWorld::Barrier(int rank, absl::Time deadline, absl::string_view what) {
  return Arrive(rank, nullptr, deadline, what);
}

absl::Status LocalWorld::Meet(int rank, const Call& call, absl::Time deadline) {
  return Arrive(rank, &call, deadline, Describe(call));
}

absl::Status LocalWorld::Arrive(int rank, const Call* call, absl::Time deadline,
                                absl::string_view what) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!failure_.ok()) return failure_;
  if (call != nullptr) calls_[rank] = *call;
  const uint64_t generation = generation_;
  if (++arrived_ == size_) {
    // The last to arrive judges for all. No rank can start the next Meet before every rank has
    // left this one, so verdict_ holds until all have read it.
    if (call != nullptr) verdict_ = CompareCalls(calls_);
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
    return call != nullptr ? verdict_ : absl::OkStatus();
  }
  bool timed_out = false;
  while (generation_ == generation) {
    if (absl::Status health = HealthLocked(-1); !health.ok()) return health;
    if (timed_out) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": rank ", rank,
                                                      " timed out waiting for ", size_ - arrived_,
                                                      " of ", size_, " ranks"));
    }
    timed_out = WaitUntil(lock, deadline);
  }
  return call != nullptr ? verdict_ : absl::OkStatus();
}

absl::Status LocalWorld::ReceiveOne(int rank, const RecvOp& recv, uint64_t sequence,
                                    absl::Time deadline) {
  Message* message = nullptr;
  {
    std::unique_lock<std::mutex> lock(mu_);
    bool timed_out = false;
    while (true) {
      for (Message& candidate : messages_) {
        if (candidate.dest == rank && candidate.source == recv.peer && candidate.tag == recv.tag &&
            candidate.sequence == sequence) {
          message = &candidate;
          break;
        }
      }
      if (message != nullptr) break;
      if (absl::Status health = HealthLocked(recv.peer); !health.ok()) return health;
      if (timed_out) {
        return absl::DeadlineExceededError(absl::StrCat("Recv: rank ", rank,
                                                        " timed out waiting for rank ", recv.peer,
                                                        " (tag ", recv.tag, ")"));
      }
      timed_out = WaitUntil(lock, deadline);
    }
    message->taken = true;
    if (message->buffer.count != recv.buffer.count || message->buffer.dtype != recv.buffer.dtype) {
      message->status = absl::InvalidArgumentError(absl::StrCat(
          "rank ", recv.peer, " sent ", Shape(message->buffer.count, message->buffer.dtype),
          " to rank ", rank, " which expected ", Shape(recv.buffer.count, recv.buffer.dtype),
          " (tag ", recv.tag, ")"));
      message->done = true;
      cv_.notify_all();
      return message->status;
    }
  }
  if (recv.buffer.bytes() > 0) {
    std::memcpy(recv.buffer.data, message->buffer.data, recv.buffer.bytes());
  }
  std::unique_lock<std::mutex> lock(mu_);
  message->done = true;
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status LocalWorld::Exchange(int rank, absl::Span<const SendOp> sends,
                                  absl::Span<const RecvOp> recvs, absl::Time deadline) {
  absl::StatusOr<std::vector<PostedSend>> posted = PostSends(rank, sends);
  if (!posted.ok()) return posted.status();
  return Complete(rank, *posted, recvs, PostReceives(rank, recvs), deadline);
}

absl::StatusOr<std::vector<LocalWorld::PostedSend>> LocalWorld::PostSends(
    int rank, absl::Span<const SendOp> sends) {
  std::vector<PostedSend> posted;
  std::unique_lock<std::mutex> lock(mu_);
  if (!failure_.ok()) return failure_;
  for (const SendOp& send : sends) {
    const uint64_t sequence = sends_posted_[{rank, send.peer, send.tag}]++;
    posted.push_back(messages_.insert(messages_.end(),
                                      Message{rank, send.peer, send.tag, send.buffer, sequence}));
  }
  cv_.notify_all();
  return posted;
}

std::vector<uint64_t> LocalWorld::PostReceives(int rank, absl::Span<const RecvOp> recvs) {
  std::vector<uint64_t> sequences;
  sequences.reserve(recvs.size());
  std::unique_lock<std::mutex> lock(mu_);
  for (const RecvOp& recv : recvs) {
    sequences.push_back(receives_posted_[{recv.peer, rank, recv.tag}]++);
  }
  return sequences;
}

absl::Status LocalWorld::Complete(int rank, const std::vector<PostedSend>& posted,
                                  absl::Span<const RecvOp> recvs,
                                  absl::Span<const uint64_t> sequences, absl::Time deadline) {
  DSMOE_CHECK(sequences.size() == recvs.size(), "LocalWorld::Complete: ", recvs.size(),
              " receives with ", sequences.size(), " places");
  absl::Status status;
  for (size_t i = 0; i < recvs.size(); ++i) {
    status = ReceiveOne(rank, recvs[i], sequences[i], deadline);
    if (!status.ok()) break;
  }
  std::unique_lock<std::mutex> lock(mu_);
  bool timed_out = false;
  for (PostedSend it : posted) {
    while (!it->done) {
      if (!it->taken) {
        if (status.ok()) status = HealthLocked(it->dest);
        if (status.ok() && timed_out) {
          status = absl::DeadlineExceededError(
              absl::StrCat("Send: rank ", rank, " timed out waiting for rank ", it->dest,
                           " to receive (tag ", it->tag, ")"));
        }
        if (!status.ok()) break;  // withdrawn below; nobody has started reading it
        timed_out = WaitUntil(lock, deadline);
      } else {
        cv_.wait(lock);  // a receiver is copying; that ends without waiting on anything else
      }
    }
    if (it->done && status.ok()) status = it->status;
    messages_.erase(it);
  }
  return status;
}

void LocalWorld::Withdraw(const std::vector<PostedSend>& posted) {
  std::unique_lock<std::mutex> lock(mu_);
  for (PostedSend it : posted) {
    while (it->taken && !it->done) cv_.wait(lock);
    messages_.erase(it);
  }
}

void LocalWorld::Leave(int rank) {
  std::unique_lock<std::mutex> lock(mu_);
  gone_[rank] = true;
  cv_.notify_all();
}

void LocalWorld::Abort(int rank, const absl::Status& why) {
  std::unique_lock<std::mutex> lock(mu_);
  if (failure_.ok()) {
    failure_ =
        absl::UnavailableError(absl::StrCat("rank ", rank, " aborted the group: ", why.message()));
  }
  cv_.notify_all();
}

}  // namespace comm::internal
