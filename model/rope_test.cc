#include "model/rope.h"

#include <cmath>

#include "gtest/gtest.h"
#include "model/init.h"

namespace model {
namespace {

TEST(RopeTest, RotatesPairsByPositionTimesFrequency) {
  // One head of width 4, sequences of 2: token 1 is at position 1; pair i turns by
  // 1 * 100^(-2i/4) = 1 and 0.1 radians.
  Matrix<double> x(2, 4);
  x << 1, 0, 1, 0,  //
      1, 0, 0, 1;
  ApplyRope(&x, 1, 4, 2, 100.0, /*inverse=*/false);
  EXPECT_DOUBLE_EQ(x(0, 0), 1);  // position 0 does not move
  EXPECT_DOUBLE_EQ(x(0, 1), 0);
  EXPECT_NEAR(x(1, 0), std::cos(1.0), 1e-15);
  EXPECT_NEAR(x(1, 1), std::sin(1.0), 1e-15);
  EXPECT_NEAR(x(1, 2), -std::sin(0.1), 1e-15);
  EXPECT_NEAR(x(1, 3), std::cos(0.1), 1e-15);
}

TEST(RopeTest, InverseUndoesForwardAndPositionsRestartPerSequence) {
  const Matrix<double> x = RandomMatrix<double>(6, 8, 1);
  Matrix<double> y = x;
  ApplyRope(&y, 2, 4, 3, 10000.0, /*inverse=*/false);
  EXPECT_TRUE(y.row(3).isApprox(x.row(3)));  // token 3 starts the second sequence
  EXPECT_FALSE(y.row(4).isApprox(x.row(4)));
  ApplyRope(&y, 2, 4, 3, 10000.0, /*inverse=*/true);
  EXPECT_TRUE(y.isApprox(x, 1e-14));
}

}  // namespace
}  // namespace model
