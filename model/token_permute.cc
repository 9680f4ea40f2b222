#include "model/token_permute.h"

#include "core/check.h"

namespace model {

DispatchPlan PlanDispatch(const std::vector<int32_t>& experts, int64_t top_k, int64_t num_experts) {
  const int64_t slots = static_cast<int64_t>(experts.size());
  DSMOE_CHECK(top_k > 0 && slots % top_k == 0, "PlanDispatch: ", slots, " slots, top_k ", top_k);
  DispatchPlan plan;
  plan.num_tokens = slots / top_k;
  plan.top_k = top_k;
  plan.expert_offsets.assign(num_experts + 1, 0);
  for (int32_t e : experts) {
    DSMOE_CHECK(e >= 0 && e < num_experts, "PlanDispatch: expert ", e, " of ", num_experts);
    ++plan.expert_offsets[e + 1];
  }
  for (int64_t e = 0; e < num_experts; ++e) plan.expert_offsets[e + 1] += plan.expert_offsets[e];
  std::vector<int64_t> next(plan.expert_offsets.begin(), plan.expert_offsets.end() - 1);
  plan.slots.resize(slots);
  for (int64_t s = 0; s < slots; ++s) plan.slots[next[experts[s]]++] = s;
  return plan;
}

template <typename T>
Matrix<T> PermuteRows(const Matrix<T>& x, const DispatchPlan& plan) {
  DSMOE_CHECK(x.rows() == plan.num_tokens, "PermuteRows: ", x.rows(), " rows for ", plan.num_tokens,
              " tokens");
  Matrix<T> rows(static_cast<int64_t>(plan.slots.size()), x.cols());
  for (size_t r = 0; r < plan.slots.size(); ++r) rows.row(r) = x.row(plan.slots[r] / plan.top_k);
  return rows;
}

template <typename T>
Matrix<T> CombineRows(const Matrix<T>& rows, const Matrix<T>* weights, const DispatchPlan& plan) {
  DSMOE_CHECK(rows.rows() == static_cast<int64_t>(plan.slots.size()), "CombineRows: ", rows.rows(),
              " rows for ", plan.slots.size(), " slots");
  Matrix<T> out = Matrix<T>::Zero(plan.num_tokens, rows.cols());
  for (size_t r = 0; r < plan.slots.size(); ++r) {
    const int64_t t = plan.slots[r] / plan.top_k;
    if (weights == nullptr) {
      out.row(t) += rows.row(r);
    } else {
      out.row(t) += (*weights)(t, plan.slots[r] % plan.top_k) * rows.row(r);
    }
  }
  return out;
}

template <typename T>
void CombineRowsBackward(const Matrix<T>& dy, const Matrix<T>& rows, const Matrix<T>& weights,
                         const DispatchPlan& plan, Matrix<T>* d_rows, Matrix<T>* d_weights) {
  DSMOE_CHECK(
      dy.rows() == plan.num_tokens && rows.rows() == static_cast<int64_t>(plan.slots.size()),
      "CombineRowsBackward: shapes do not match the plan");
  d_rows->resize(rows.rows(), rows.cols());
  d_weights->resize(plan.num_tokens, plan.top_k);
  for (size_t r = 0; r < plan.slots.size(); ++r) {
    const int64_t t = plan.slots[r] / plan.top_k;
    const int64_t j = plan.slots[r] % plan.top_k;
    d_rows->row(r) = weights(t, j) * dy.row(t);
    (*d_weights)(t, j) = dy.row(t).dot(rows.row(r));
  }
}

template Matrix<float> PermuteRows<float>(const Matrix<float>&, const DispatchPlan&);
template Matrix<double> PermuteRows<double>(const Matrix<double>&, const DispatchPlan&);
template Matrix<float> CombineRows<float>(const Matrix<float>&, const Matrix<float>*,
                                          const DispatchPlan&);
template Matrix<double> CombineRows<double>(const Matrix<double>&, const Matrix<double>*,
                                            const DispatchPlan&);
template void CombineRowsBackward<float>(const Matrix<float>&, const Matrix<float>&,
                                         const Matrix<float>&, const DispatchPlan&, Matrix<float>*,
                                         Matrix<float>*);
template void CombineRowsBackward<double>(const Matrix<double>&, const Matrix<double>&,
                                          const Matrix<double>&, const DispatchPlan&,
                                          Matrix<double>*, Matrix<double>*);

}  // namespace model
