// The local halves of MoE dispatch and combine: grouping routed (token, slot) pairs by expert, and
// moving rows between token order [tokens, width] and expert order [tokens * top_k, width].
// With expert parallelism, the expert-ordered rows are what an all-to-all sends (experts are
// sharded contiguously, so expert order is also destination-rank order).
#ifndef MODEL_TOKEN_PERMUTE_H_
#define MODEL_TOKEN_PERMUTE_H_

#include <cstdint>
#include <vector>

#include "model/matrix.h"

namespace model {

struct DispatchPlan {
  int64_t num_tokens = 0;
  int64_t top_k = 0;
  // [experts + 1]: expert e's rows are [expert_offsets[e], expert_offsets[e + 1]).
  std::vector<int64_t> expert_offsets;
  // [tokens * top_k]: expert-ordered row r holds routing slot slots[r] = t * top_k + j (token t's
  // j-th choice); sorted by expert, then by slot.
  std::vector<int64_t> slots;
};

// The plan for Routing::experts `experts` ([tokens * top_k]). CHECKs every expert is in
// [0, num_experts) and top_k divides experts.size().
DispatchPlan PlanDispatch(const std::vector<int32_t>& experts, int64_t top_k, int64_t num_experts);

// x [tokens, width] -> [tokens * top_k, width]: row r is x[slots[r] / top_k].
template <typename T>
Matrix<T> PermuteRows(const Matrix<T>& x, const DispatchPlan& plan);

// rows [tokens * top_k, width] -> [tokens, width]: out[t] = sum_j w(t, j) rows[r(t, j)], with
// w = *weights [tokens, top_k], or 1 when weights is null (the backward of PermuteRows).
template <typename T>
Matrix<T> CombineRows(const Matrix<T>& rows, const Matrix<T>* weights, const DispatchPlan& plan);

// The backward of CombineRows(rows, &weights, plan) for the upstream gradient dy [tokens, width]:
// sets *d_rows [tokens * top_k, width] and *d_weights [tokens, top_k].
template <typename T>
void CombineRowsBackward(const Matrix<T>& dy, const Matrix<T>& rows, const Matrix<T>& weights,
                         const DispatchPlan& plan, Matrix<T>* d_rows, Matrix<T>* d_weights);

}  // namespace model

#endif  // MODEL_TOKEN_PERMUTE_H_
