#include "model/token_permute.h"

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

// Three tokens, top-2 over 3 experts: token 0 -> {2, 0}, token 1 -> {0, 1}, token 2 -> {2, 1}.
const std::vector<int32_t> kExperts = {2, 0, 0, 1, 2, 1};

TEST(TokenPermuteTest, PlanGroupsSlotsByExpert) {
  const DispatchPlan plan = PlanDispatch(kExperts, 2, 3);
  EXPECT_EQ(plan.num_tokens, 3);
  EXPECT_EQ(plan.expert_offsets, (std::vector<int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(plan.slots, (std::vector<int64_t>{1, 2, 3, 5, 0, 4}));
}

TEST(TokenPermuteTest, PermuteThenCombineWithUnitWeightsCountsCopies) {
  const DispatchPlan plan = PlanDispatch(kExperts, 2, 3);
  Matrix<double> x(3, 1);
  x << 10, 20, 30;
  const Matrix<double> rows = PermuteRows(x, plan);
  Matrix<double> expected(6, 1);
  expected << 10, 20, 20, 30, 10, 30;
  EXPECT_TRUE(rows == expected);
  EXPECT_TRUE(CombineRows<double>(rows, nullptr, plan) == 2 * x);
}

TEST(TokenPermuteTest, CombineBackwardMatchesFiniteDifferences) {
  const DispatchPlan plan = PlanDispatch(kExperts, 2, 3);
  Matrix<double> rows = RandomMatrix<double>(6, 4, 1);
  Matrix<double> weights = RandomMatrix<double>(3, 2, 2);
  const Matrix<double> r = RandomMatrix<double>(3, 4, 3);
  Matrix<double> d_rows, d_weights;
  CombineRowsBackward(r, rows, weights, plan, &d_rows, &d_weights);
  const auto loss = [&] { return test_util::Dot(CombineRows(rows, &weights, plan), r); };
  test_util::ExpectGradientMatches(loss, &rows, d_rows, "rows");
  test_util::ExpectGradientMatches(loss, &weights, d_weights, "weights");
}

}  // namespace
}  // namespace model
