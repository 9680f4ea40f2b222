#include "model/moe.h"

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace model {

std::vector<int64_t> RowsPerRank(const std::vector<int64_t>& expert_counts, int ep_size) {
  const int64_t experts = static_cast<int64_t>(expert_counts.size());
  DSMOE_CHECK(ep_size > 0 && experts % ep_size == 0, "RowsPerRank: ", experts, " experts over ",
              ep_size, " ranks");
  const int64_t local = experts / ep_size;
  std::vector<int64_t> rows(ep_size, 0);
  for (int64_t e = 0; e < experts; ++e) rows[e / local] += expert_counts[e];
  return rows;
}

template <typename T>
Moe<T>::Moe(const std::string& prefix, int64_t hidden, const MoeConfig& moe, int ep_rank,
            int ep_size)
    : ep_size_(ep_size), gate_(prefix + "gate.", hidden, moe) {
  DSMOE_CHECK(ep_rank >= 0 && ep_rank < ep_size && moe.num_routed_experts() % ep_size == 0, prefix,
              ": EP rank ", ep_rank, " of ", ep_size, " for ", moe.num_routed_experts(),
              " experts");
  if (moe.num_shared_experts() > 0) {
    shared_ = std::make_unique<Mlp<T>>(
        prefix + "shared_experts.", hidden,
        static_cast<int64_t>(moe.num_shared_experts()) * moe.expert_intermediate_size());
  }
  const int local = moe.num_routed_experts() / ep_size;
  experts_.reserve(local);
  for (int e = ep_rank * local; e < (ep_rank + 1) * local; ++e) {
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
  for (Param<T>* p : ExpertParams()) params.push_back(p);
  return params;
}

template <typename T>
std::vector<Param<T>*> Moe<T>::ExpertParams() {
  std::vector<Param<T>*> params;
  for (Mlp<T>& expert : experts_) {
    for (Param<T>* p : expert.Params()) params.push_back(p);
  }
  return params;
}

template <typename T>
Matrix<T> Moe<T>::Forward(const Matrix<T>& x, const BatchInfo& batch, Context* ctx) const {
  DSMOE_CHECK(ep_size_ == 1, "Moe::Forward with expert parallelism: use the phases");
  ExpertRows<T> dispatch = ForwardDispatch(x, batch, ctx);
  return ForwardCombine(ForwardExperts(dispatch.rows, dispatch.expert_counts, ctx), ctx);
}

template <typename T>
Matrix<T> Moe<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  DSMOE_CHECK(ep_size_ == 1, "Moe::BackwardInput with expert parallelism: use the phases");
  return BackwardDispatch(BackwardExperts(BackwardCombine(std::move(dy), ctx), ctx), ctx);
}

template <typename T>
ExpertRows<T> Moe<T>::ForwardDispatch(const Matrix<T>& x, const BatchInfo& batch,
                                      Context* ctx) const {
  Routing<T> routing = gate_.Forward(x, batch, &ctx->gate);
  ctx->aux_loss = routing.aux_loss;
  ctx->loads = ExpertLoads(routing.experts, num_experts());
  ctx->plan = PlanDispatch(routing.experts, routing.top_k, num_experts());
  ctx->weights = std::move(routing.weights);
  if (shared_ != nullptr) ctx->shared_out = shared_->Forward(x, &ctx->shared);
  return {PermuteRows(x, ctx->plan), ctx->loads};
}

template <typename T>
Matrix<T> Moe<T>::ForwardExperts(const Matrix<T>& rows, const std::vector<int64_t>& recv_counts,
                                 Context* ctx) const {
  const int64_t local = num_local_experts();
  DSMOE_CHECK(static_cast<int64_t>(recv_counts.size()) % local == 0,
              "Moe::ForwardExperts: ", recv_counts.size(), " counts for ", local, " experts");
  const int64_t sources = static_cast<int64_t>(recv_counts.size()) / local;
  // Received rows are source-major: source s's rows for local expert l start at start[s * L + l].
  std::vector<int64_t> start(recv_counts.size() + 1, 0);
  for (size_t i = 0; i < recv_counts.size(); ++i) start[i + 1] = start[i] + recv_counts[i];
  DSMOE_CHECK(start.back() == rows.rows(), "Moe::ForwardExperts: counts sum to ", start.back(),
              ", rows ", rows.rows());
  ctx->recv_counts = recv_counts;
  ctx->order.clear();
  ctx->local_offsets.assign(1, 0);
  for (int64_t l = 0; l < local; ++l) {
    for (int64_t s = 0; s < sources; ++s) {
      for (int64_t r = start[s * local + l]; r < start[s * local + l + 1]; ++r) {
        ctx->order.push_back(r);
      }
    }
    ctx->local_offsets.push_back(static_cast<int64_t>(ctx->order.size()));
  }
  Matrix<T> out(rows.rows(), rows.cols());
  ctx->experts.resize(local);
  for (int64_t l = 0; l < local; ++l) {
    const int64_t begin = ctx->local_offsets[l];
    const int64_t count = ctx->local_offsets[l + 1] - begin;
    Matrix<T> in(count, rows.cols());
    for (int64_t i = 0; i < count; ++i) in.row(i) = rows.row(ctx->order[begin + i]);
    const Matrix<T> y = experts_[l].Forward(in, &ctx->experts[l]);
    for (int64_t i = 0; i < count; ++i) out.row(ctx->order[begin + i]) = y.row(i);
  }
  return out;
}

template <typename T>
Matrix<T> Moe<T>::ForwardCombine(Matrix<T> expert_out, Context* ctx) const {
  ctx->expert_out = std::move(expert_out);
  Matrix<T> y = CombineRows(ctx->expert_out, &ctx->weights, ctx->plan);
  if (shared_ != nullptr) {
    y += ctx->shared_out;
    ctx->shared_out = Matrix<T>();
  }
  return y;
}

template <typename T>
Matrix<T> Moe<T>::BackwardCombine(Matrix<T> dy, Context* ctx) const {
  Matrix<T> d_rows;
  CombineRowsBackward(dy, ctx->expert_out, ctx->weights, ctx->plan, &d_rows, &ctx->d_weights);
  ctx->expert_out = Matrix<T>();
  if (shared_ != nullptr) ctx->dx_shared = shared_->BackwardInput(std::move(dy), &ctx->shared);
  return d_rows;
}

template <typename T>
Matrix<T> Moe<T>::BackwardExperts(const Matrix<T>& d_rows, Context* ctx) const {
  DSMOE_CHECK(d_rows.rows() == static_cast<int64_t>(ctx->order.size()),
              "Moe::BackwardExperts: ", d_rows.rows(), " rows, forward had ", ctx->order.size());
  Matrix<T> dx_rows(d_rows.rows(), d_rows.cols());
  for (int64_t l = 0; l < num_local_experts(); ++l) {
    const int64_t begin = ctx->local_offsets[l];
    const int64_t count = ctx->local_offsets[l + 1] - begin;
    Matrix<T> dy(count, d_rows.cols());
    for (int64_t i = 0; i < count; ++i) dy.row(i) = d_rows.row(ctx->order[begin + i]);
    const Matrix<T> dx = experts_[l].BackwardInput(std::move(dy), &ctx->experts[l]);
    for (int64_t i = 0; i < count; ++i) dx_rows.row(ctx->order[begin + i]) = dx.row(i);
  }
  return dx_rows;
}

template <typename T>
Matrix<T> Moe<T>::BackwardDispatch(const Matrix<T>& dx_rows, Context* ctx) const {
  Matrix<T> dx = CombineRows<T>(dx_rows, nullptr, ctx->plan);
  dx += gate_.BackwardInput(ctx->d_weights, &ctx->gate);
  ctx->d_weights = Matrix<T>();
  if (shared_ != nullptr) {
    dx += ctx->dx_shared;
    ctx->dx_shared = Matrix<T>();
  }
  return dx;
}

template <typename T>
void Moe<T>::BackwardWeight(Context* ctx) {
  gate_.BackwardWeight(&ctx->gate);
  if (shared_ != nullptr) shared_->BackwardWeight(&ctx->shared);
  for (size_t l = 0; l < experts_.size(); ++l) experts_[l].BackwardWeight(&ctx->experts[l]);
  *ctx = Context();
}

template class Moe<float>;
template class Moe<double>;

}  // namespace model
