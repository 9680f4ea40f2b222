#include "model/cross_entropy.h"

#include <cmath>

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

TEST(CrossEntropyTest, UniformLogitsGiveLogVocab) {
  const Matrix<double> logits = Matrix<double>::Constant(2, 4, 3.0);
  EXPECT_NEAR(CrossEntropy<double>(logits, {1, 3}, nullptr), std::log(4.0), 1e-15);
}

TEST(CrossEntropyTest, IgnoredTargetsDoNotCount) {
  Matrix<double> logits = RandomMatrix<double>(3, 5, 1);
  Matrix<double> d;
  const double both = CrossEntropy<double>(logits, {2, kIgnoreTarget, 4}, &d);
  EXPECT_TRUE(d.row(1).isZero());
  const double first = CrossEntropy<double>(logits.topRows(1), {2}, nullptr);
  const double last = CrossEntropy<double>(logits.bottomRows(1), {4}, nullptr);
  EXPECT_NEAR(both, (first + last) / 2, 1e-15);
  EXPECT_EQ(CrossEntropy<double>(logits, {-1, -1, -1}, &d), 0.0);
  EXPECT_TRUE(d.isZero());
}

TEST(CrossEntropyTest, GradientMatchesFiniteDifferences) {
  Matrix<double> logits = RandomMatrix<double>(4, 6, 2, 3.0);
  const std::vector<int32_t> targets = {5, 0, kIgnoreTarget, 3};
  Matrix<double> d;
  CrossEntropy<double>(logits, targets, &d, 0.5);
  test_util::ExpectGradientMatches(
      [&] { return 0.5 * CrossEntropy<double>(logits, targets, nullptr); }, &logits, d, "logits");
}

}  // namespace
}  // namespace model
