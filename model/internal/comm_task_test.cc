#include "model/internal/comm_task.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "comm/buffer.h"
#include "comm/local_communicator.h"
#include "core/status_macros.h"
#include "gtest/gtest.h"

namespace model::internal {
namespace {

// Computes (logs), starts an all-to-all of one value per rank, and after it completes checks what
// arrived and logs again; `rounds` times.
CommTask Exchange(comm::Communicator& comm, std::string name, int rounds,
                  std::vector<std::string>* log) {
  for (int round = 0; round < rounds; ++round) {
    std::vector<int32_t> send(comm.size(), comm.rank() * 100 + round), received(comm.size(), -1);
    const std::vector<size_t> ones(comm.size(), 1);
    CO_ASSIGN_OR_RETURN(std::unique_ptr<comm::Request> request,
                        comm.StartAllToAll(comm::ConstHostBuffer<int32_t>(send), ones,
                                           comm::HostBuffer<int32_t>(received), ones));
    log->push_back(name + " started");
    CO_RETURN_IF_ERROR(co_await AwaitRequest{request.get()});
    for (int peer = 0; peer < comm.size(); ++peer) {
      if (received[peer] != peer * 100 + round) {
        co_return absl::InternalError(name + " received a wrong value");
      }
    }
    log->push_back(name + " resumed");
  }
  co_return absl::OkStatus();
}

// Runs body(rank, a_comm, b_comm) on two ranks as threads, each with two communicators.
template <typename Body>
std::vector<absl::Status> RunTwoRanks(Body body) {
  std::vector<std::unique_ptr<comm::Communicator>> a = comm::CreateLocalGroup(2);
  std::vector<std::unique_ptr<comm::Communicator>> b = comm::CreateLocalGroup(2);
  std::vector<absl::Status> statuses(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] { statuses[r] = body(r, *a[r], *b[r]); });
  }
  for (std::thread& t : threads) t.join();
  return statuses;
}

TEST(CommTaskTest, InterleavedTasksComputeWhileTheOthersExchangeTravel) {
  std::vector<std::vector<std::string>> logs(2);
  const std::vector<absl::Status> statuses =
      RunTwoRanks([&](int r, comm::Communicator& a, comm::Communicator& b) {
        const auto [status_a, status_b] =
            RunInterleaved(Exchange(a, "a", 2, &logs[r]), Exchange(b, "b", 2, &logs[r]));
        RETURN_IF_ERROR(status_a);
        return status_b;
      });
  const std::vector<std::string> want = {"a started", "b started", "a resumed", "a started",
                                         "b resumed", "b started", "a resumed", "b resumed"};
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(statuses[r].ok()) << statuses[r];
    EXPECT_EQ(logs[r], want) << "rank " << r;
  }
}

TEST(CommTaskTest, RunAloneWaitsAtEachAwait) {
  std::vector<std::vector<std::string>> logs(2);
  const std::vector<absl::Status> statuses =
      RunTwoRanks([&](int r, comm::Communicator& a, comm::Communicator&) {
        return RunAlone(Exchange(a, "a", 2, &logs[r]));
      });
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(statuses[r].ok()) << statuses[r];
    EXPECT_EQ(logs[r],
              (std::vector<std::string>{"a started", "a resumed", "a started", "a resumed"}));
  }
}

TEST(CommTaskTest, AWaitErrorEndsTheTaskWithIt) {
  std::vector<std::string> log;
  const std::vector<absl::Status> statuses =
      RunTwoRanks([&](int r, comm::Communicator& a, comm::Communicator&) -> absl::Status {
        if (r == 1) return absl::OkStatus();  // leaves without exchanging
        a.set_timeout(absl::Seconds(1));
        return RunAlone(Exchange(a, "a", 1, &log));
      });
  EXPECT_FALSE(statuses[0].ok());
  EXPECT_TRUE(absl::IsUnavailable(statuses[0]) || absl::IsDeadlineExceeded(statuses[0]))
      << statuses[0];
  EXPECT_EQ(log, std::vector<std::string>{"a started"});
}

}  // namespace
}  // namespace model::internal
