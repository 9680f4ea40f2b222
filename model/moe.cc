#include "model/moe.h"

#include "absl/strings/str_cat.h"

namespace model {

template <typename T>
Moe<T>::Moe(const std::string& prefix, int64_t hidden, const MoeConfig& moe)
    : gate_(prefix + "gate.", hidden, moe) {
  if (moe.num_shared_experts() > 0) {
    shared_ = std::make_unique<Mlp<T>>(
        prefix + "shared_experts.", hidden,
        static_cast<int64_t>(moe.num_shared_experts()) * moe.expert_intermediate_size());
  }
  experts_.reserve(moe.num_routed_experts());
  for (int e = 0; e < moe.num_routed_experts(); ++e) {
    experts_.emplace_back(absl::StrCat(prefix, "experts.", e, "."), hidden,
                          moe.expert_intermediate_size());
  }
}

template <typename T>
std::vector<Param<T>*> Moe<T>::Params() {
  std::vector<Param<T>*> params = gate_.Params();
  if (shared_ != nullptr) {
    for (Param<T>* p : shared_->Params()) params.push_back(p);
  }
  for (Mlp<T>& expert : experts_) {
    for (Param<T>* p : expert.Params()) params.push_back(p);
  }
  return params;
}

template <typename T>
Matrix<T> Moe<T>::Forward(const Matrix<T>& x, Context* ctx) const {
  Routing<T> routing = gate_.Forward(x, &ctx->gate);
  ctx->loads = ExpertLoads(routing.experts, num_experts());
  ctx->plan = PlanDispatch(routing.experts, routing.top_k, num_experts());
  ctx->weights = std::move(routing.weights);
  const Matrix<T> rows = PermuteRows(x, ctx->plan);
  ctx->expert_out.resize(rows.rows(), rows.cols());
  ctx->experts.resize(experts_.size());
  for (size_t e = 0; e < experts_.size(); ++e) {
    const int64_t begin = ctx->plan.expert_offsets[e];
    const int64_t count = ctx->plan.expert_offsets[e + 1] - begin;
    ctx->expert_out.middleRows(begin, count) =
        experts_[e].Forward(rows.middleRows(begin, count), &ctx->experts[e]);
  }
  Matrix<T> y = CombineRows(ctx->expert_out, &ctx->weights, ctx->plan);
  if (shared_ != nullptr) y += shared_->Forward(x, &ctx->shared);
  return y;
}

template <typename T>
Matrix<T> Moe<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  Matrix<T> d_rows, d_weights;
  CombineRowsBackward(dy, ctx->expert_out, ctx->weights, ctx->plan, &d_rows, &d_weights);
  ctx->expert_out = Matrix<T>();
  Matrix<T> dx_rows(d_rows.rows(), d_rows.cols());
  for (size_t e = 0; e < experts_.size(); ++e) {
    const int64_t begin = ctx->plan.expert_offsets[e];
    const int64_t count = ctx->plan.expert_offsets[e + 1] - begin;
    dx_rows.middleRows(begin, count) =
        experts_[e].BackwardInput(d_rows.middleRows(begin, count), &ctx->experts[e]);
  }
  Matrix<T> dx = CombineRows<T>(dx_rows, nullptr, ctx->plan);
  dx += gate_.BackwardInput(d_weights, &ctx->gate);
  if (shared_ != nullptr) dx += shared_->BackwardInput(std::move(dy), &ctx->shared);
  return dx;
}

template <typename T>
void Moe<T>::BackwardWeight(Context* ctx) {
  gate_.BackwardWeight(&ctx->gate);
  if (shared_ != nullptr) shared_->BackwardWeight(&ctx->shared);
  for (size_t e = 0; e < experts_.size(); ++e) experts_[e].BackwardWeight(&ctx->experts[e]);
  *ctx = Context();
}

template class Moe<float>;
template class Moe<double>;

}  // namespace model
