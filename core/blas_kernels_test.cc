#include "core/blas_kernels.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace core {
namespace {

TEST(BlasKernelsTest, NamesTheLoadedKernels) { EXPECT_FALSE(BlasCoreName().empty()); }

// A user's OPENBLAS_CORETYPE is left alone: UseBestBlasKernels returns without re-executing.
TEST(BlasKernelsTest, RespectsTheUsersChoice) {
  setenv("OPENBLAS_CORETYPE", "HASWELL", 1);
  char* argv[] = {nullptr};
  UseBestBlasKernels(argv);
  EXPECT_STREQ(std::getenv("OPENBLAS_CORETYPE"), "HASWELL");
}

}  // namespace
}  // namespace core
