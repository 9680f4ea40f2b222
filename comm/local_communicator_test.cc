#include "comm/local_communicator.h"

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "comm/internal/conformance.h"
#include "gtest/gtest.h"

namespace comm {
namespace {

using internal::HostTestMemory;

// Runs `check` on `size` ranks and expects every rank to succeed.
void ExpectAllRanksPass(int size, absl::Status (*check)(Communicator&, internal::TestMemory&)) {
  const std::vector<absl::Status> statuses = RunLocalRanks(size, [&](Communicator& comm) {
    EXPECT_EQ(comm.backend(), "local");
    HostTestMemory memory;
    return check(comm, memory);
  });
  for (int r = 0; r < size; ++r)
    EXPECT_TRUE(statuses[r].ok()) << "rank " << r << ": " << statuses[r];
}

class LocalConformanceTest : public testing::TestWithParam<int> {};

TEST_P(LocalConformanceTest, PointToPoint) {
  ExpectAllRanksPass(GetParam(), internal::CheckPointToPoint);
}
TEST_P(LocalConformanceTest, NonBlockingP2P) {
  ExpectAllRanksPass(GetParam(), internal::CheckNonBlockingP2P);
}
TEST_P(LocalConformanceTest, AllReduce) {
  ExpectAllRanksPass(GetParam(), internal::CheckAllReduce);
}
TEST_P(LocalConformanceTest, AllGather) {
  ExpectAllRanksPass(GetParam(), internal::CheckAllGather);
}
TEST_P(LocalConformanceTest, AllToAll) { ExpectAllRanksPass(GetParam(), internal::CheckAllToAll); }
TEST_P(LocalConformanceTest, Broadcast) {
  ExpectAllRanksPass(GetParam(), internal::CheckBroadcast);
}
TEST_P(LocalConformanceTest, BarrierAndSplit) {
  ExpectAllRanksPass(GetParam(), internal::CheckBarrierAndSplit);
}
TEST_P(LocalConformanceTest, MismatchesAreCaught) {
  ExpectAllRanksPass(GetParam(), internal::CheckMismatchesAreCaught);
}

INSTANTIATE_TEST_SUITE_P(Sizes, LocalConformanceTest, testing::Values(1, 2, 3, 4, 8));

TEST(LocalCommunicatorTest, RejectsBadArgumentsAndStaysUsable) {
  const std::vector<absl::Status> statuses = RunLocalRanks(2, [](Communicator& comm) {
    std::vector<float> a(4), b(3);
    std::vector<int32_t> c(4);
    EXPECT_TRUE(absl::IsInvalidArgument(comm.Send(ConstHostBuffer<float>(a), 2)));
    EXPECT_TRUE(absl::IsInvalidArgument(comm.Broadcast(HostBuffer<float>(a), -1)));
    EXPECT_TRUE(absl::IsInvalidArgument(
        comm.AllReduce(ConstHostBuffer<float>(a), HostBuffer<float>(b), ReduceOp::kSum)));
    EXPECT_TRUE(absl::IsInvalidArgument(
        comm.AllReduce(ConstHostBuffer<float>(a), HostBuffer<int32_t>(c), ReduceOp::kSum)));
    EXPECT_TRUE(
        absl::IsInvalidArgument(comm.AllGather(ConstHostBuffer<float>(a), HostBuffer<float>(a))));
    const size_t counts[] = {1, 1};
    EXPECT_TRUE(absl::IsInvalidArgument(
        comm.AllToAll(ConstHostBuffer<float>(a), {counts, 1}, HostBuffer<float>(a), counts)));
    EXPECT_TRUE(absl::IsInvalidArgument(comm.Split(-1, 0).status()));
    Buffer device{a.data(), a.size(), core::DType::kF32, core::Device::kCuda};
    EXPECT_TRUE(absl::IsInvalidArgument(comm.Broadcast(device, 0)));
    return comm.Barrier();
  });
  for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
}

TEST(LocalCommunicatorTest, MismatchedCountsAcrossRanksAreInvalidArgument) {
  const std::vector<absl::Status> statuses = RunLocalRanks(2, [](Communicator& comm) {
    std::vector<float> a(comm.rank() + 2, 1.0f);
    EXPECT_TRUE(absl::IsInvalidArgument(
        comm.AllReduce(ConstHostBuffer<float>(a), HostBuffer<float>(a), ReduceOp::kSum)));
    const absl::Status p2p = comm.rank() == 0 ? comm.Send(ConstHostBuffer<float>(a), 1)
                                              : comm.Recv(HostBuffer<float>(a), 0);
    EXPECT_TRUE(absl::IsInvalidArgument(p2p)) << p2p;
    return comm.Barrier();
  });
  for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
}

TEST(LocalCommunicatorTest, StartAllToAllCountMismatchIsAnErrorAtWait) {
  const std::vector<absl::Status> statuses = RunLocalRanks(2, [](Communicator& comm) {
    // Rank 0 sends rank 1 two elements; rank 1 expects three.
    const std::vector<size_t> send =
        comm.rank() == 0 ? std::vector<size_t>{1, 2} : std::vector<size_t>{1, 1};
    const std::vector<size_t> recv =
        comm.rank() == 0 ? std::vector<size_t>{1, 1} : std::vector<size_t>{3, 1};
    std::vector<float> in(3, 1.0f), out(4, 0.0f);
    absl::StatusOr<std::unique_ptr<Request>> request =
        comm.StartAllToAll(ConstHostBuffer<float>(in), send, HostBuffer<float>(out), recv);
    if (!request.ok()) return request.status();
    return (*request)->Wait();
  });
  EXPECT_FALSE(statuses[0].ok() && statuses[1].ok());
  for (const absl::Status& status : statuses) {
    if (!status.ok()) {
      EXPECT_TRUE(absl::IsInvalidArgument(status) || absl::IsDeadlineExceeded(status) ||
                  absl::IsUnavailable(status))
          << status;
    }
  }
}

TEST(LocalCommunicatorTest, RankThatNeverJoinsMakesOthersFailWithinDeadline) {
  absl::Notification done;
  const std::vector<absl::Status> statuses = RunLocalRanks(3, [&](Communicator& comm) {
    if (comm.rank() == 2) {
      done.WaitForNotification();  // alive, but never calls AllReduce
      return absl::OkStatus();
    }
    comm.set_timeout(absl::Milliseconds(200));
    std::vector<int32_t> value = {1};
    const absl::Time start = absl::Now();
    absl::Status status =
        comm.AllReduce(ConstHostBuffer<int32_t>(value), HostBuffer<int32_t>(value), ReduceOp::kSum);
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
    EXPECT_TRUE(absl::IsDeadlineExceeded(status) || absl::IsUnavailable(status)) << status;
    EXPECT_TRUE(absl::IsFailedPrecondition(comm.Barrier()));
    if (comm.rank() == 0) done.Notify();
    return status;
  });
  EXPECT_TRUE(absl::IsDeadlineExceeded(statuses[0]) || absl::IsDeadlineExceeded(statuses[1]));
}

TEST(LocalCommunicatorTest, RankThatExitsMakesOthersUnavailable) {
  const std::vector<absl::Status> statuses = RunLocalRanks(3, [](Communicator& comm) {
    if (comm.rank() == 1) return absl::OkStatus();  // leaves at once
    std::vector<int32_t> value = {1};
    const absl::Status collective = comm.Broadcast(HostBuffer<int32_t>(value), 0);
    EXPECT_TRUE(absl::IsUnavailable(collective)) << collective;
    return collective;
  });
  EXPECT_TRUE(absl::IsUnavailable(statuses[0]));
  EXPECT_TRUE(absl::IsUnavailable(statuses[2]));
}

TEST(LocalCommunicatorTest, ReceiveFromExitedRankIsUnavailable) {
  const std::vector<absl::Status> statuses = RunLocalRanks(2, [](Communicator& comm) {
    if (comm.rank() == 1) return absl::OkStatus();
    std::vector<float> value(3);
    return comm.Recv(HostBuffer<float>(value), 1);
  });
  EXPECT_TRUE(absl::IsUnavailable(statuses[0])) << statuses[0];
}

TEST(LocalCommunicatorTest, UnmatchedSendTimesOut) {
  const std::vector<absl::Status> statuses = RunLocalRanks(2, [](Communicator& comm) {
    if (comm.rank() == 1) {
      std::vector<float> value(3);
      comm.set_timeout(absl::Milliseconds(300));
      return comm.Recv(HostBuffer<float>(value), 0, /*tag=*/5);  // never sent
    }
    comm.set_timeout(absl::Milliseconds(100));
    std::vector<float> value(3, 1.0f);
    return comm.Send(ConstHostBuffer<float>(value), 1, /*tag=*/4);
  });
  EXPECT_TRUE(absl::IsDeadlineExceeded(statuses[0])) << statuses[0];
  EXPECT_FALSE(statuses[1].ok());
}

TEST(LocalCommunicatorTest, UnwaitedRequestIsWithdrawnAndItsReceiverTimesOut) {
  absl::Notification received;
  const std::vector<absl::Status> statuses = RunLocalRanks(2, [&](Communicator& comm) {
    comm.set_timeout(absl::Milliseconds(200));
    std::vector<float> value(3, 1.0f);
    if (comm.rank() == 0) {
      absl::StatusOr<std::unique_ptr<Request>> send =
          comm.StartBatchP2P({{ConstHostBuffer<float>(value), 1, 0}}, {});
      if (!send.ok()) return send.status();
      send->reset();  // withdrawn before rank 1 looks for it
      const absl::Status barrier = comm.Barrier();
      received.WaitForNotification();  // stay in the group while rank 1 waits
      return barrier;
    }
    EXPECT_TRUE(comm.Barrier().ok());
    absl::StatusOr<std::unique_ptr<Request>> recv =
        comm.StartBatchP2P({}, {{HostBuffer<float>(value), 0, 0}});
    if (!recv.ok()) return recv.status();
    const absl::Status status = (*recv)->Wait();
    EXPECT_EQ((*recv)->Wait(), status);  // the first outcome, without waiting again
    received.Notify();
    return status;
  });
  EXPECT_TRUE(statuses[0].ok()) << statuses[0];
  EXPECT_TRUE(absl::IsDeadlineExceeded(statuses[1])) << statuses[1];
}

TEST(LocalCommunicatorTest, StartBatchP2PRejectsBadArgumentsWithoutPosting) {
  const std::vector<absl::Status> statuses = RunLocalRanks(2, [](Communicator& comm) {
    std::vector<float> value(3);
    EXPECT_TRUE(absl::IsInvalidArgument(
        comm.StartBatchP2P({{ConstHostBuffer<float>(value), 5, 0}}, {}).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(
        comm.StartBatchP2P({}, {{HostBuffer<float>(value), 1, -1}}).status()));
    return comm.Barrier();
  });
  for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
}

TEST(CommunicatorTest, FlagsGiveOptionsOrAnError) {
  const absl::Duration saved = absl::GetFlag(FLAGS_comm_timeout);
  const bool saved_checked = absl::GetFlag(FLAGS_comm_checked);
  absl::SetFlag(&FLAGS_comm_timeout, absl::ZeroDuration());
  EXPECT_TRUE(absl::IsInvalidArgument(CommOptionsFromFlags().status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateCommFlags()));
  // A communicator made from the bad flags is an error returned, not a crash.
  for (const absl::Status& status : RunLocalRanks(2, [](Communicator&) {
         ADD_FAILURE() << "ran with a bad --comm_timeout";
         return absl::OkStatus();
       })) {
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  }
  absl::SetFlag(&FLAGS_comm_timeout, absl::Seconds(7));
  absl::SetFlag(&FLAGS_comm_checked, !kCheckedByDefault);
  const absl::StatusOr<CommOptions> options = CommOptionsFromFlags();
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->timeout, absl::Seconds(7));
  EXPECT_EQ(options->checked, !kCheckedByDefault);
  const std::vector<absl::Status> statuses = RunLocalRanks(2, [](Communicator& comm) {
    EXPECT_EQ(comm.timeout(), absl::Seconds(7));
    EXPECT_EQ(comm.checked(), !kCheckedByDefault);
    return absl::OkStatus();
  });
  absl::SetFlag(&FLAGS_comm_timeout, saved);
  absl::SetFlag(&FLAGS_comm_checked, saved_checked);
  for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
}

TEST(CommunicatorTest, OptionsAreValidatedAndSplitInheritsThem) {
  for (const absl::Status& status : RunLocalRanks(2, {.timeout = -absl::Seconds(1)},
                                                  [](Communicator&) { return absl::OkStatus(); })) {
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  }
  const CommOptions options = {.timeout = absl::Seconds(5), .checked = false};
  const std::vector<absl::Status> statuses = RunLocalRanks(2, options, [](Communicator& comm) {
    EXPECT_EQ(comm.timeout(), absl::Seconds(5));
    EXPECT_FALSE(comm.checked());
    comm.set_timeout(absl::Seconds(3));
    absl::StatusOr<std::unique_ptr<Communicator>> child = comm.Split(0, 0);
    if (!child.ok()) return child.status();
    EXPECT_EQ((*child)->timeout(), absl::Seconds(3));
    EXPECT_FALSE((*child)->checked());
    return absl::OkStatus();
  });
  for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
  const std::vector<std::unique_ptr<Communicator>> group = CreateLocalGroup(3, options);
  EXPECT_EQ(group[2]->timeout(), absl::Seconds(5));
}

}  // namespace
}  // namespace comm
