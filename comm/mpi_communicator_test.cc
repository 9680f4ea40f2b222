// Runs under mpirun (see mpirun_test.sh): every process runs every test, as one rank.
#include "comm/mpi_communicator.h"

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "comm/internal/conformance.h"
#include "gtest/gtest.h"

namespace comm {
namespace {

using internal::HostTestMemory;

class MpiCommunicatorTest : public testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Communicator>> world = CreateMpiWorld();
    ASSERT_TRUE(world.ok()) << world.status();
    comm_ = *std::move(world);
    comm_->set_timeout(absl::Seconds(20));
    ASSERT_EQ(comm_->backend(), "mpi");
    ASSERT_GE(comm_->size(), 2) << "run under mpirun with 2 or more processes";
  }

  std::unique_ptr<Communicator> comm_;
  HostTestMemory memory_;
};

TEST_F(MpiCommunicatorTest, PointToPoint) {
  const absl::Status status = internal::CheckPointToPoint(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(MpiCommunicatorTest, NonBlockingP2P) {
  const absl::Status status = internal::CheckNonBlockingP2P(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(MpiCommunicatorTest, AllReduce) {
  const absl::Status status = internal::CheckAllReduce(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(MpiCommunicatorTest, AllGather) {
  const absl::Status status = internal::CheckAllGather(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(MpiCommunicatorTest, AllToAll) {
  const absl::Status status = internal::CheckAllToAll(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(MpiCommunicatorTest, Broadcast) {
  const absl::Status status = internal::CheckBroadcast(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(MpiCommunicatorTest, BarrierAndSplit) {
  const absl::Status status = internal::CheckBarrierAndSplit(*comm_, memory_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(MpiCommunicatorTest, RejectsBadArgumentsAndStaysUsable) {
  std::vector<float> values(4);
  EXPECT_TRUE(absl::IsInvalidArgument(comm_->Send(ConstHostBuffer<float>(values), comm_->size())));
  EXPECT_TRUE(absl::IsInvalidArgument(comm_->Send(ConstHostBuffer<float>(values), 0, -3)));
  Buffer device{values.data(), values.size(), core::DType::kF32, MemoryKind::kDevice};
  EXPECT_TRUE(absl::IsInvalidArgument(comm_->Broadcast(device, 0)));
  EXPECT_TRUE(comm_->Barrier().ok());
}

TEST_F(MpiCommunicatorTest, ThreadsUseSplitCommunicatorsConcurrently) {
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

}  // namespace
}  // namespace comm
