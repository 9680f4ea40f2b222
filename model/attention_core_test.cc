#include "model/attention_core.h"

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

// Two sequences of 3 tokens, 2 heads, queries and keys of width 5 and values of width 3.
TEST(AttentionCoreTest, GradientsMatchFiniteDifferencesWithNarrowerValues) {
  Matrix<double> q = RandomMatrix<double>(6, 10, 1);
  Matrix<double> k = RandomMatrix<double>(6, 10, 2);
  Matrix<double> v = RandomMatrix<double>(6, 6, 3);
  const Matrix<double> r = RandomMatrix<double>(6, 6, 4);
  const auto loss = [&] {
    AttentionCoreContext<double> c;
    return test_util::Dot(AttentionCoreForward<double>(q, k, v, 2, 3, 0.4, &c), r);
  };
  AttentionCoreContext<double> ctx;
  AttentionCoreForward<double>(q, k, v, 2, 3, 0.4, &ctx);
  Matrix<double> dq, dk, dv;
  AttentionCoreBackward(r, &ctx, &dq, &dk, &dv);
  test_util::ExpectGradientMatches(loss, &q, dq, "q");
  test_util::ExpectGradientMatches(loss, &k, dk, "k");
  test_util::ExpectGradientMatches(loss, &v, dv, "v");
}

TEST(AttentionCoreTest, FirstTokenCopiesItsValue) {
  const Matrix<double> q = RandomMatrix<double>(4, 4, 1);
  const Matrix<double> v = RandomMatrix<double>(4, 2, 2);
  AttentionCoreContext<double> ctx;
  const Matrix<double> o = AttentionCoreForward<double>(q, q, v, 2, 2, 0.5, &ctx);
  EXPECT_TRUE(o.row(0) == v.row(0));  // position 0 sees only itself
  EXPECT_TRUE(o.row(2) == v.row(2));  // so does the first token of the second sequence
}

}  // namespace
}  // namespace model
