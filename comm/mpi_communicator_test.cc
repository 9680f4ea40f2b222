// Runs under mpirun (see mpirun_test.sh): every process runs every test, as one rank.
#include "comm/mpi_communicator.h"

#include <cstdint>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "comm/internal/conformance.h"
#include "gtest/gtest.h"

namespace comm {
namespace {

using internal::HostTestMemory;

// Every test runs with checked mode on and off (the parameter).
class MpiCommunicatorTest : public testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Communicator>> world =
        CreateMpiWorld({.timeout = absl::Seconds(20), .checked = GetParam()});
    ASSERT_TRUE(world.ok()) << world.status();
    comm_ = *std::move(world);
    ASSERT_EQ(comm_->backend(), "mpi");
    ASSERT_GE(comm_->size(), 2) << "run under mpirun with 2 or more processes";
  }

  std::unique_ptr<Communicator> comm_;
  HostTestMemory memory_;
};

TEST_P(MpiCommunicatorTest, PointToPoint) {
  const absl::Status status = internal::CheckPointToPoint(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_P(MpiCommunicatorTest, NonBlockingP2P) {
  const absl::Status status = internal::CheckNonBlockingP2P(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_P(MpiCommunicatorTest, AllReduce) {
  const absl::Status status = internal::CheckAllReduce(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_P(MpiCommunicatorTest, AllGather) {
  const absl::Status status = internal::CheckAllGather(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_P(MpiCommunicatorTest, AllToAll) {
  const absl::Status status = internal::CheckAllToAll(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_P(MpiCommunicatorTest, Broadcast) {
  const absl::Status status = internal::CheckBroadcast(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_P(MpiCommunicatorTest, BarrierAndSplit) {
  const absl::Status status = internal::CheckBarrierAndSplit(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_P(MpiCommunicatorTest, MismatchesAreCaught) {
  if (!comm_->checked()) {
    GTEST_SKIP() << "needs checked mode";
  }
  const absl::Status status = internal::CheckMismatchesAreCaught(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_P(MpiCommunicatorTest, ReceivesThatDoNotFitAreCaughtUnchecked) {
  if (comm_->checked()) {
    GTEST_SKIP() << "for unchecked mode";
  }
  // Point-to-point checks need no checked mode: the receiver checks what arrived.
  std::vector<float> four(4, 1.0f), three(3, 1.0f);
  std::vector<int32_t> value = {1};
  if (comm_->rank() == 0) {
    EXPECT_TRUE(comm_->Send(ConstHostBuffer<float>(three), 1, 9).ok());
  }
  if (comm_->rank() == 1) {
    const absl::Status status = comm_->Recv(HostBuffer<float>(four), 0, 9);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  }
  EXPECT_TRUE(
      comm_->AllReduce(ConstHostBuffer<int32_t>(value), HostBuffer<int32_t>(value), ReduceOp::kSum)
          .ok());
  EXPECT_EQ(value[0], comm_->size());
}

// Unchecked, ranks that pass different counts to AllReduce are undefined in MPI. The job must
// still survive: each rank returns an error or (with wrong data) OK, the communicator of the
// failed call is aborted where it failed, and other communicators keep working.
TEST_P(MpiCommunicatorTest, UncheckedCountMismatchDoesNotKillTheJob) {
  if (comm_->checked()) {
    GTEST_SKIP() << "for unchecked mode";
  }
  absl::StatusOr<std::unique_ptr<Communicator>> other =
      CreateMpiWorld({.timeout = absl::Seconds(2), .checked = false});
  ASSERT_TRUE(other.ok()) << other.status();
  std::vector<float> values(comm_->rank() == 0 ? 4 : 8, 1.0f);
  const absl::Status status = (*other)->AllReduce(ConstHostBuffer<float>(values),
                                                  HostBuffer<float>(values), ReduceOp::kSum);
  std::cerr << "rank " << comm_->rank() << ": " << status << "\n";
  if (!status.ok()) {
    EXPECT_TRUE(absl::IsInternal(status) || absl::IsDeadlineExceeded(status)) << status;
    EXPECT_TRUE(absl::IsFailedPrecondition((*other)->Barrier()));
  }
  EXPECT_TRUE(comm_->Barrier().ok());
}

// The unchecked barrier names the rank that did not come: the last rank skips a barrier of a
// communicator with a 1 s timeout; every other rank gets DEADLINE_EXCEEDED naming it within 1.5
// timeouts.
TEST_P(MpiCommunicatorTest, BarrierNamesTheRankThatDidNotCome) {
  if (comm_->checked()) {
    GTEST_SKIP() << "for unchecked mode (checked mode's barrier is its call comparison)";
  }
  absl::StatusOr<std::unique_ptr<Communicator>> other =
      CreateMpiWorld({.timeout = absl::Seconds(1), .checked = false});
  ASSERT_TRUE(other.ok()) << other.status();
  const int absent = comm_->size() - 1;
  if (comm_->rank() != absent) {
    const absl::Time start = absl::Now();
    const absl::Status status = (*other)->Barrier();
    const absl::Duration took = absl::Now() - start;
    std::cerr << "rank " << comm_->rank() << " after " << took << ": " << status << "\n";
    EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
    EXPECT_TRUE(
        absl::StrContains(status.message(), absl::StrCat("rank ", absent, " did not arrive")))
        << status;
    EXPECT_LT(took, absl::Seconds(3));
  }
  EXPECT_TRUE(comm_->Barrier().ok());
  // And when every rank comes, the roll call is a barrier.
  absl::StatusOr<std::unique_ptr<Communicator>> fresh =
      CreateMpiWorld({.timeout = absl::Seconds(20), .checked = false});
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE((*fresh)->Barrier().ok());
}

TEST_P(MpiCommunicatorTest, RejectsBadArgumentsAndStaysUsable) {
  std::vector<float> values(4);
  EXPECT_TRUE(absl::IsInvalidArgument(comm_->Send(ConstHostBuffer<float>(values), comm_->size())));
  EXPECT_TRUE(absl::IsInvalidArgument(comm_->Send(ConstHostBuffer<float>(values), 0, -3)));
  Buffer device{values.data(), values.size(), core::DType::kF32, core::Device::kCuda};
  EXPECT_TRUE(absl::IsInvalidArgument(comm_->Broadcast(device, 0)));
  EXPECT_TRUE(comm_->Barrier().ok());
}

TEST_P(MpiCommunicatorTest, ThreadsUseSplitCommunicatorsConcurrently) {
  // MPI_THREAD_MULTIPLE: two threads per process, each on its own communicator.
  absl::StatusOr<std::unique_ptr<Communicator>> a = comm_->Split(0, comm_->rank());
  absl::StatusOr<std::unique_ptr<Communicator>> b = comm_->Split(0, comm_->rank());
  ASSERT_TRUE(a.ok() && b.ok());
  absl::Status status_a, status_b;
  std::thread thread([&] {
    HostTestMemory memory;
    status_a = internal::CheckAllToAll(**a, memory);
  });
  HostTestMemory memory;
  status_b = internal::CheckAllReduce(**b, memory);
  thread.join();
  EXPECT_TRUE(status_a.ok()) << status_a;
  EXPECT_TRUE(status_b.ok()) << status_b;
}

INSTANTIATE_TEST_SUITE_P(CheckedAndUnchecked, MpiCommunicatorTest, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "Checked" : "Unchecked";
                         });

}  // namespace
}  // namespace comm
