// main() for GPU tests: runs them where a CUDA device is visible, and skips every test (a pass with
// a "no CUDA device" note, not a failure) where none is, so a GPU test binary gives an honest
// answer on any machine.
#include "core/cuda_memory.h"
#include "gtest/gtest.h"

namespace {

class SkipWithoutCudaDevice : public testing::Environment {
 public:
  void SetUp() override {
    if (core::CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::AddGlobalTestEnvironment(new SkipWithoutCudaDevice);
  return RUN_ALL_TESTS();
}
