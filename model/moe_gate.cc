#include "model/moe_gate.h"

#include <algorithm>
#include <numeric>

#include "core/check.h"

namespace model {
namespace {

// Indices of the n largest values, best first; ties go to the lower index.
template <typename T>
std::vector<int64_t> TopIndices(const std::vector<T>& values, const std::vector<int64_t>& among,
                                int64_t n) {
  std::vector<int64_t> order = among;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return values[a] > values[b]; });
  order.resize(n);
  return order;
}

}  // namespace

template <typename T>
MoeGate<T>::MoeGate(const std::string& prefix, int64_t hidden, const MoeConfig& moe)
    : num_experts_(moe.num_routed_experts()),
      top_k_(moe.top_k()),
      num_groups_(moe.num_groups()),
      topk_groups_(moe.topk_groups()),
      route_scale_(static_cast<T>(moe.route_scale())),
      bias_update_speed_(static_cast<T>(moe.bias_update_speed())),
      aux_alpha_(static_cast<T>(moe.sequence_aux_loss_alpha())),
      proj_(prefix + "weight", hidden, moe.num_routed_experts()),
      bias_(prefix + "e_score_correction_bias", 1, moe.num_routed_experts(), ParamKind::kBuffer) {
  DSMOE_CHECK(num_groups_ > 0 && num_experts_ % num_groups_ == 0 && top_k_ > 0 &&
                  topk_groups_ * (num_experts_ / num_groups_) >= top_k_,
              prefix, ": invalid MoE config (run ValidateConfig first)");
}

template <typename T>
Routing<T> MoeGate<T>::Forward(const Matrix<T>& x, const BatchInfo& batch, Context* ctx) const {
  DSMOE_CHECK(batch.seq_len > 0 && x.rows() % batch.seq_len == 0, proj_.weight().name, ": ",
              x.rows(), " tokens are not whole sequences of ", batch.seq_len);
  const Matrix<T> logits = proj_.Forward(x, &ctx->proj);
  ctx->scores = (T(1) / (T(1) + (-logits.array()).exp())).matrix();
  const int64_t tokens = x.rows();
  const int64_t group_size = num_experts_ / num_groups_;
  const int64_t per_group = std::min<int64_t>(2, group_size);
  Routing<T> routing;
  routing.top_k = top_k_;
  routing.experts.resize(tokens * top_k_);
  routing.weights.resize(tokens, top_k_);
  std::vector<T> biased(num_experts_), group_scores(num_groups_);
  std::vector<int64_t> all_groups(num_groups_);
  std::iota(all_groups.begin(), all_groups.end(), 0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < num_experts_; ++e) biased[e] = ctx->scores(t, e) + bias_.value(0, e);
    for (int64_t g = 0; g < num_groups_; ++g) {
      std::vector<int64_t> members(group_size);
      std::iota(members.begin(), members.end(), g * group_size);
      group_scores[g] = 0;
      for (int64_t e : TopIndices(biased, members, per_group)) group_scores[g] += biased[e];
    }
    std::vector<int64_t> kept = TopIndices(group_scores, all_groups, topk_groups_);
    std::sort(kept.begin(), kept.end());
    std::vector<int64_t> candidates;
    for (int64_t g : kept) {
      for (int64_t e = g * group_size; e < (g + 1) * group_size; ++e) candidates.push_back(e);
    }
    const std::vector<int64_t> chosen = TopIndices(biased, candidates, top_k_);
    T sum = 0;
    for (int64_t e : chosen) sum += ctx->scores(t, e);
    for (int64_t j = 0; j < top_k_; ++j) {
      routing.experts[t * top_k_ + j] = static_cast<int32_t>(chosen[j]);
      routing.weights(t, j) = ctx->scores(t, chosen[j]) / sum * route_scale_;
    }
  }
  ctx->experts = routing.experts;
  ctx->seq_len = batch.seq_len;
  ctx->aux_coefficient = 0;
  if (aux_alpha_ > 0 && tokens > 0) {
    const int64_t sequences = tokens / batch.seq_len;
    const T seq_len = static_cast<T>(batch.seq_len);
    ctx->aux_f = Matrix<T>::Zero(sequences, num_experts_);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t j = 0; j < top_k_; ++j) {
        ctx->aux_f(t / batch.seq_len, routing.experts[t * top_k_ + j]) +=
            static_cast<T>(num_experts_) / (static_cast<T>(top_k_) * seq_len);
      }
    }
    const Matrix<T> normalised =
        ctx->scores.array().colwise() / ctx->scores.rowwise().sum().array();
    for (int64_t b = 0; b < sequences; ++b) {
      const Matrix<T> p =
          normalised.middleRows(b * batch.seq_len, batch.seq_len).colwise().sum() / seq_len;
      routing.aux_loss += aux_alpha_ * ctx->aux_f.row(b).dot(p.row(0)) / static_cast<T>(sequences);
    }
    ctx->aux_coefficient =
        aux_alpha_ * static_cast<T>(batch.loss_scale) / (seq_len * static_cast<T>(sequences));
  }
  return routing;
}

template <typename T>
Matrix<T> MoeGate<T>::BackwardInput(const Matrix<T>& d_weights, Context* ctx) const {
  const int64_t tokens = ctx->scores.rows();
  DSMOE_CHECK(d_weights.rows() == tokens && d_weights.cols() == top_k_, proj_.weight().name,
              ": routing-weight gradient shape does not match the forward pass");
  // w_j = c s_j / S with S = sum of the chosen s: ds_i = c (dw_i - sum_j dw_j s_j / S) / S.
  Matrix<T> d_scores = Matrix<T>::Zero(tokens, num_experts_);
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t* chosen = &ctx->experts[t * top_k_];
    T sum = 0;
    T weighted = 0;
    for (int64_t j = 0; j < top_k_; ++j) sum += ctx->scores(t, chosen[j]);
    for (int64_t j = 0; j < top_k_; ++j) weighted += d_weights(t, j) * ctx->scores(t, chosen[j]);
    for (int64_t j = 0; j < top_k_; ++j) {
      d_scores(t, chosen[j]) = route_scale_ * (d_weights(t, j) - weighted / sum) / sum;
    }
  }
  if (ctx->aux_coefficient != 0) {
    // g_i = dL/ds'_i = coefficient f_i; through s' = s / sum(s): ds_i = (g_i - g . s') / sum(s).
    for (int64_t t = 0; t < tokens; ++t) {
      const auto s = ctx->scores.row(t);
      const T sum = s.sum();
      const auto g = ctx->aux_f.row(t / ctx->seq_len) * ctx->aux_coefficient;
      const T g_dot = g.dot(s) / sum;
      d_scores.row(t).array() += (g.array() - g_dot) / sum;
    }
  }
  Matrix<T> d_logits =
      (d_scores.array() * ctx->scores.array() * (T(1) - ctx->scores.array())).matrix();
  ctx->scores = Matrix<T>();
  ctx->experts.clear();
  ctx->aux_f = Matrix<T>();
  return proj_.BackwardInput(std::move(d_logits), &ctx->proj);
}

template <typename T>
void MoeGate<T>::BackwardWeight(Context* ctx) {
  proj_.BackwardWeight(&ctx->proj);
}

template <typename T>
void MoeGate<T>::UpdateBias(const std::vector<int64_t>& loads) {
  DSMOE_CHECK(static_cast<int64_t>(loads.size()) == num_experts_, bias_.name, ": ", loads.size(),
              " loads for ", num_experts_, " experts");
  const double mean = static_cast<double>(std::accumulate(loads.begin(), loads.end(), int64_t{0})) /
                      static_cast<double>(num_experts_);
  for (int64_t e = 0; e < num_experts_; ++e) {
    const double diff = mean - static_cast<double>(loads[e]);
    bias_.value(0, e) += bias_update_speed_ * static_cast<T>((diff > 0) - (diff < 0));
  }
}

std::vector<int64_t> ExpertLoads(const std::vector<int32_t>& experts, int64_t num_experts) {
  std::vector<int64_t> loads(num_experts, 0);
  for (int32_t e : experts) {
    DSMOE_CHECK(e >= 0 && e < num_experts, "ExpertLoads: expert ", e);
    ++loads[e];
  }
  return loads;
}

template class MoeGate<float>;
template class MoeGate<double>;

}  // namespace model
