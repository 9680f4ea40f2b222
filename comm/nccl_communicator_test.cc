// GPU tests of the nccl backend (tag "gpu"): the conformance suite on device memory, with one
// rank per visible GPU bootstrapped over the local backend, or over MPI when run by mpirun.
#include "comm/nccl_communicator.h"

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "comm/internal/conformance.h"
#include "comm/local_communicator.h"
#include "comm/mpi_communicator.h"
#include "core/status_macros.h"
#include "gtest/gtest.h"

namespace comm {
namespace {

// Device memory on the calling thread's current device.
class CudaTestMemory : public internal::TestMemory {
 public:
  ~CudaTestMemory() override {
    for (void* block : blocks_) cudaFree(block);
  }
  core::Device kind() const override { return core::Device::kCuda; }
  void* Allocate(size_t bytes) override {
    void* data = nullptr;
    EXPECT_EQ(cudaMalloc(&data, bytes + 1), cudaSuccess);
    EXPECT_EQ(cudaMemset(data, 0, bytes + 1), cudaSuccess);
    blocks_.push_back(data);
    return data;
  }
  void CopyIn(void* dst, const void* host_src, size_t bytes) override {
    EXPECT_EQ(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice), cudaSuccess);
  }
  void CopyOut(void* host_dst, const void* src, size_t bytes) override {
    EXPECT_EQ(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  }

 private:
  std::vector<void*> blocks_;
};

int DeviceCount() {
  int devices = 0;
  return cudaGetDeviceCount(&devices) == cudaSuccess ? devices : 0;
}

// Every conformance check on an NCCL communicator made over `bootstrap` on `device`.
absl::Status RunConformance(Communicator& bootstrap, int device) {
  ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, CreateNcclCommunicator(bootstrap, device));
  comm->set_timeout(absl::Seconds(30));
  CudaTestMemory memory;
  RETURN_IF_ERROR(internal::CheckPointToPoint(*comm, memory));
  RETURN_IF_ERROR(internal::CheckAllReduce(*comm, memory));
  RETURN_IF_ERROR(internal::CheckAllGather(*comm, memory));
  RETURN_IF_ERROR(internal::CheckAllToAll(*comm, memory));
  RETURN_IF_ERROR(internal::CheckBroadcast(*comm, memory));
  return internal::CheckBarrierAndSplit(*comm, memory);
}

TEST(NcclCommunicatorTest, ConformanceOverLocalBootstrap) {
  const int devices = DeviceCount();
  ASSERT_GT(devices, 0) << "no CUDA device";
  const std::vector<absl::Status> statuses = RunLocalRanks(
      devices, [](Communicator& bootstrap) { return RunConformance(bootstrap, bootstrap.rank()); });
  for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
}

TEST(NcclCommunicatorTest, ConformanceOverMpiBootstrap) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr) GTEST_SKIP() << "not under mpirun";
  absl::StatusOr<std::unique_ptr<Communicator>> world = CreateMpiWorld();
  ASSERT_TRUE(world.ok()) << world.status();
  const absl::Status status = RunConformance(**world, (*world)->rank() % DeviceCount());
  EXPECT_TRUE(status.ok()) << status;
}

TEST(NcclCommunicatorTest, RejectsHostMemoryAndBadDevice) {
  const std::vector<absl::Status> statuses = RunLocalRanks(1, [](Communicator& bootstrap) {
    EXPECT_TRUE(absl::IsInvalidArgument(CreateNcclCommunicator(bootstrap, -1).status()));
    ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, CreateNcclCommunicator(bootstrap, 0));
    std::vector<float> host(4);
    EXPECT_TRUE(absl::IsInvalidArgument(comm->Broadcast(HostBuffer<float>(host), 0)));
    return comm->Barrier();
  });
  EXPECT_TRUE(statuses[0].ok()) << statuses[0];
}

TEST(NcclCommunicatorTest, RankThatNeverJoinsTimesOutAndAborts) {
  if (DeviceCount() < 2) GTEST_SKIP() << "needs 2 GPUs";
  const std::vector<absl::Status> statuses = RunLocalRanks(2, [](Communicator& bootstrap) {
    ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
                     CreateNcclCommunicator(bootstrap, bootstrap.rank()));
    absl::Status status;
    if (comm->rank() == 0) {
      comm->set_timeout(absl::Seconds(2));
      CudaTestMemory memory;
      void* data = memory.Allocate(sizeof(float));
      const absl::Time start = absl::Now();
      status =
          comm->AllReduce(Buffer{data, 1, core::DType::kF32, core::Device::kCuda},
                          Buffer{data, 1, core::DType::kF32, core::Device::kCuda}, ReduceOp::kSum);
      EXPECT_LT(absl::Now() - start, absl::Seconds(10));
      EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
      EXPECT_TRUE(absl::IsFailedPrecondition(comm->Barrier()));
    }
    // Rank 1 never joins the AllReduce; both meet again on the bootstrap communicator.
    RETURN_IF_ERROR(bootstrap.Barrier());
    return absl::IsDeadlineExceeded(status) || comm->rank() == 1 ? absl::OkStatus() : status;
  });
  for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
}

}  // namespace
}  // namespace comm
