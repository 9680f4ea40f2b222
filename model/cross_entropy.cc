#include "model/cross_entropy.h"

#include "core/check.h"

namespace model {

template <typename T>
T CrossEntropy(const Matrix<T>& logits, const std::vector<int32_t>& targets, Matrix<T>* dlogits,
               T loss_scale) {
  DSMOE_CHECK(static_cast<int64_t>(targets.size()) == logits.rows(),
              "CrossEntropy: ", targets.size(), " targets for ", logits.rows(), " rows");
  int64_t counted = 0;
  for (int32_t target : targets) {
    DSMOE_CHECK(target == kIgnoreTarget || (target >= 0 && target < logits.cols()),
                "CrossEntropy: target ", target, " outside vocabulary ", logits.cols());
    counted += target != kIgnoreTarget;
  }
  if (dlogits != nullptr) dlogits->setZero(logits.rows(), logits.cols());
  if (counted == 0) return T(0);
  T total = 0;
  for (int64_t t = 0; t < logits.rows(); ++t) {
    if (targets[t] == kIgnoreTarget) continue;
    const auto row = logits.row(t).array();
    const T max = row.maxCoeff();
    const auto shifted = row - max;
    const T sum = shifted.exp().sum();
    total += std::log(sum) - shifted(targets[t]);
    if (dlogits != nullptr) {
      const T scale = loss_scale / static_cast<T>(counted);
      dlogits->row(t) = (shifted.exp() / sum * scale).matrix();
      (*dlogits)(t, targets[t]) -= scale;
    }
  }
  return total / static_cast<T>(counted);
}

template float CrossEntropy<float>(const Matrix<float>&, const std::vector<int32_t>&,
                                   Matrix<float>*, float);
template double CrossEntropy<double>(const Matrix<double>&, const std::vector<int32_t>&,
                                     Matrix<double>*, double);

}  // namespace model
