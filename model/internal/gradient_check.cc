#include "model/internal/gradient_check.h"

#include <algorithm>
#include <cmath>

#include "gtest/gtest.h"

namespace model::test_util {

void ExpectGradientMatches(const std::function<double()>& loss, Matrix<double>* values,
                           const Matrix<double>& analytic, const std::string& what,
                           double tolerance, double step) {
  ASSERT_EQ(values->rows(), analytic.rows()) << what;
  ASSERT_EQ(values->cols(), analytic.cols()) << what;
  int failures = 0;
  for (int64_t i = 0; i < values->size(); ++i) {
    double& v = values->data()[i];
    const double saved = v;
    v = saved + step;
    const double plus = loss();
    v = saved - step;
    const double minus = loss();
    v = saved;
    const double numeric = (plus - minus) / (2 * step);
    const double expected = analytic.data()[i];
    if (std::abs(numeric - expected) > tolerance * std::max(1.0, std::abs(expected)) &&
        ++failures <= 5) {
      ADD_FAILURE() << what << "[" << i << "]: analytic " << expected << ", numeric " << numeric;
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << values->size() << " differ";
}

void ExpectParamGradientsMatch(const std::function<double()>& loss,
                               const std::vector<Param<double>*>& params, double tolerance) {
  for (Param<double>* p : params) {
    if (!p->trainable()) continue;
    const Matrix<double> analytic = p->grad;
    ExpectGradientMatches(loss, &p->value, analytic, p->name, tolerance);
  }
}

std::vector<Matrix<double>> Grads(const std::vector<Param<double>*>& params) {
  std::vector<Matrix<double>> grads;
  for (const Param<double>* p : params) grads.push_back(p->grad);
  return grads;
}

}  // namespace model::test_util
