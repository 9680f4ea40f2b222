#include "serving/incremental_model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"
#include "model/config.h"
#include "model/rope.h"

namespace serving {
namespace {

std::string LayerName(int64_t layer, const std::string& rest) {
  return absl::StrCat("model.layers.", layer, ".", rest);
}

// Indices of the n largest values among `among`, best first; ties to the lower index (as
// model::MoeGate).
std::vector<int64_t> TopIndices(const std::vector<float>& values, std::vector<int64_t> among,
                                int64_t n) {
  std::stable_sort(among.begin(), among.end(),
                   [&](int64_t a, int64_t b) { return values[a] > values[b]; });
  among.resize(n);
  return among;
}

}  // namespace

IncrementalModel::IncrementalModel(model::ModelStage<float>& stage, core::ThreadPool* pool)
    : config_(stage.config()), pool_(pool) {
  DSMOE_CHECK(stage.range().has_embedding && stage.range().has_head &&
                  stage.range().begin_layer == 0 &&
                  stage.range().end_layer == config_.num_layers() && stage.ep_size() == 1,
              "IncrementalModel needs the whole model on one rank");
  std::map<std::string, const Mat*> params;
  for (model::Param<float>* p : stage.Params()) params[p->name] = &p->value;
  const auto get = [&](const std::string& name) {
    auto it = params.find(name);
    DSMOE_CHECK(it != params.end(), "IncrementalModel: no parameter ", name);
    return it->second;
  };
  const auto has = [&](const std::string& name) { return params.count(name) != 0; };
  embedding_ = get("model.embed_tokens.weight");
  norm_ = get("model.norm.weight");
  head_ = get("lm_head.weight");
  eps_ = static_cast<float>(config_.rms_norm_eps());
  mla_ = config_.has_mla();
  heads_ = config_.num_heads();
  nope_ = config_.mla().qk_nope_head_dim();
  rope_dim_ = mla_ ? config_.mla().qk_rope_head_dim() : config_.head_dim();
  v_dim_ = config_.mla().v_head_dim();
  kv_lora_ = config_.mla().kv_lora_rank();
  head_dim_ = config_.head_dim();
  const int64_t qk = mla_ ? nope_ + rope_dim_ : head_dim_;
  const model::RopeSpec rope = model::RopeSpec::FromConfig(config_, rope_dim_);
  scale_ = static_cast<float>(1.0 / std::sqrt(static_cast<double>(qk)) * rope.softmax_scale_factor);
  const int64_t pairs = rope_dim_ / 2;
  cos_.resize(config_.max_seq_len() * pairs);
  sin_.resize(cos_.size());
  for (int64_t p = 0; p < config_.max_seq_len(); ++p) {
    for (int64_t i = 0; i < pairs; ++i) {
      const double angle = static_cast<double>(p) * rope.inv_freq[i];
      cos_[p * pairs + i] = static_cast<float>(std::cos(angle));
      sin_[p * pairs + i] = static_cast<float>(std::sin(angle));
    }
  }
  cache_width_ = mla_ ? kv_lora_ + rope_dim_ : 2 * heads_ * head_dim_;

  const auto ffn = [&](const std::string& prefix) {
    return Ffn{get(prefix + "gate_proj.weight"), get(prefix + "up_proj.weight"),
               get(prefix + "down_proj.weight")};
  };
  for (int64_t l = 0; l < config_.num_layers(); ++l) {
    Layer w;
    w.attn_norm = get(LayerName(l, "input_layernorm.weight"));
    w.ffn_norm = get(LayerName(l, "post_attention_layernorm.weight"));
    const std::string attn = LayerName(l, "self_attn.");
    if (mla_) {
      if (has(attn + "q_proj.weight")) {
        w.q = get(attn + "q_proj.weight");
      } else {
        w.q_a = get(attn + "q_a_proj.weight");
        w.q_norm = get(attn + "q_a_layernorm.weight");
        w.q_b = get(attn + "q_b_proj.weight");
      }
      w.kv_a = get(attn + "kv_a_proj_with_mqa.weight");
      w.kv_norm = get(attn + "kv_a_layernorm.weight");
      const Mat& kv_b = *get(attn + "kv_b_proj.weight");  // [heads * (nope + v), kv_lora]
      for (int64_t h = 0; h < heads_; ++h) {
        w.k_absorb.push_back(kv_b.middleRows(h * (nope_ + v_dim_), nope_).transpose());
        w.v_absorb.push_back(kv_b.middleRows(h * (nope_ + v_dim_) + nope_, v_dim_));
      }
    } else {
      w.wq = get(attn + "q_proj.weight");
      w.wk = get(attn + "k_proj.weight");
      w.wv = get(attn + "v_proj.weight");
    }
    w.o = get(attn + "o_proj.weight");
    const std::string mlp = LayerName(l, "mlp.");
    w.moe = model::IsMoeLayer(config_, static_cast<int>(l));
    if (!w.moe) {
      w.dense = ffn(mlp);
    } else {
      w.router = get(mlp + "gate.weight");
      if (model::GateHasBias(config_.moe(), config_.hidden_size())) {
        w.bias = get(mlp + "gate.e_score_correction_bias");
      }
      for (int64_t e = 0; e < config_.moe().num_routed_experts(); ++e) {
        w.experts.push_back(ffn(absl::StrCat(mlp, "experts.", e, ".")));
      }
      w.has_shared = config_.moe().num_shared_experts() > 0;
      if (w.has_shared) w.shared = ffn(mlp + "shared_experts.");
    }
    layers_.push_back(std::move(w));
  }
}

int64_t IncrementalModel::ActiveWeightBytes() const {
  int64_t floats = norm_->size() + head_->size();
  const auto ffn = [](const Ffn& f) { return f.gate->size() + f.up->size() + f.down->size(); };
  for (const Layer& w : layers_) {
    floats += w.attn_norm->size() + w.ffn_norm->size() + w.o->size();
    for (const Mat* m : {w.q, w.q_a, w.q_norm, w.q_b, w.kv_a, w.kv_norm, w.wq, w.wk, w.wv}) {
      if (m != nullptr) floats += m->size();
    }
    for (const Mat& m : w.k_absorb) floats += m.size();
    for (const Mat& m : w.v_absorb) floats += m.size();
    if (!w.moe) {
      floats += ffn(w.dense);
      continue;
    }
    floats += w.router->size() + config_.moe().top_k() * ffn(w.experts[0]);
    if (w.has_shared) floats += ffn(w.shared);
  }
  return floats * static_cast<int64_t>(sizeof(float));
}

void IncrementalModel::Rope(float* x, int64_t pos) const {
  const int64_t pairs = rope_dim_ / 2;
  const float* c = &cos_[pos * pairs];
  const float* s = &sin_[pos * pairs];
  for (int64_t i = 0; i < pairs; ++i) {
    const float a = x[2 * i];
    const float b = x[2 * i + 1];
    x[2 * i] = a * c[i] - b * s[i];
    x[2 * i + 1] = a * s[i] + b * c[i];
  }
}

absl::StatusOr<Mat> IncrementalModel::Forward(absl::Span<const SequenceChunk> chunks,
                                              KvCache* cache, ExpertLoads* loads,
                                              MoeExecutor* executor,
                                              core::TraceRecorder* trace) const {
  DSMOE_CHECK(cache != nullptr && cache->width() == cache_width_, "IncrementalModel: cache width ",
              cache->width(), " for ", cache_width_);
  Rows rows;
  int64_t logit_rows = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const SequenceChunk& chunk = chunks[c];
    const int64_t n = static_cast<int64_t>(chunk.tokens.size());
    if (chunk.start < 0 || chunk.start + n > config_.max_seq_len()) {
      return absl::InvalidArgumentError(absl::StrCat("chunk ", c, ": positions [", chunk.start,
                                                     ", ", chunk.start + n, ") beyond max_seq_len ",
                                                     config_.max_seq_len()));
    }
    if (chunk.block_table == nullptr ||
        static_cast<int64_t>(chunk.block_table->size()) < cache->BlocksFor(chunk.start + n)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chunk ", c, ": the block table does not cover ", chunk.start + n, " tokens"));
    }
    for (int64_t i = 0; i < n; ++i) {
      if (chunk.tokens[i] < 0 || chunk.tokens[i] >= config_.vocab_size()) {
        return absl::InvalidArgumentError(absl::StrCat("chunk ", c, ": token id ", chunk.tokens[i],
                                                       " outside [0, ", config_.vocab_size(), ")"));
      }
      rows.chunk.push_back(static_cast<int64_t>(c));
      rows.position.push_back(chunk.start + i);
    }
    logit_rows += chunk.logits < 0 ? n : std::min<int64_t>(chunk.logits, n);
  }
  const int64_t tokens = static_cast<int64_t>(rows.chunk.size());
  Mat x(tokens, config_.hidden_size());
  for (int64_t t = 0; t < tokens; ++t) {
    const SequenceChunk& chunk = chunks[rows.chunk[t]];
    x.row(t) = embedding_->row(chunk.tokens[rows.position[t] - chunk.start]);
  }
  if (loads != nullptr) loads->clear();
  int64_t moe_layer = 0;
  for (int64_t l = 0; l < num_layers(); ++l) {
    const Layer& w = layers_[l];
    Mat h;
    {
      core::ScopedTrace span(trace, absl::StrCat("layer ", l, mla_ ? " MLA" : " attention"),
                             "forward", 0, 0);
      h = x + Attention(l, RmsNormRows(x, *w.attn_norm, eps_), chunks, rows, cache);
    }
    core::ScopedTrace span(trace, absl::StrCat("layer ", l, w.moe ? " MoE" : " MLP"), "forward", 0,
                           0);
    const Mat f = RmsNormRows(h, *w.ffn_norm, eps_);
    if (w.moe) {
      std::vector<int64_t> layer_loads;
      ASSIGN_OR_RETURN(const Mat moe, Moe(w, moe_layer++, f, &layer_loads, executor));
      x = h + moe;
      if (loads != nullptr) loads->push_back(std::move(layer_loads));
    } else {
      x = h + RunFfn(w.dense, f, pool_);
    }
  }
  Mat last(logit_rows, config_.hidden_size());
  int64_t r = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    const SequenceChunk& chunk = chunks[rows.chunk[t]];
    const int64_t end = chunk.start + static_cast<int64_t>(chunk.tokens.size());
    if (chunk.logits < 0 || rows.position[t] >= end - chunk.logits) last.row(r++) = x.row(t);
  }
  return MatMulT(RmsNormRows(last, *norm_, eps_), *head_, pool_);
}

Mat IncrementalModel::Attention(int64_t layer, const Mat& x, absl::Span<const SequenceChunk> chunks,
                                const Rows& rows, KvCache* cache) const {
  const Layer& w = layers_[layer];
  return mla_ ? MlaAttention(w, layer, x, chunks, rows, cache)
              : StandardAttention(w, layer, x, chunks, rows, cache);
}

Mat IncrementalModel::MlaAttention(const Layer& w, int64_t layer, const Mat& x,
                                   absl::Span<const SequenceChunk> chunks, const Rows& rows,
                                   KvCache* cache) const {
  const int64_t tokens = x.rows();
  const int64_t qk = nope_ + rope_dim_;
  const Mat q = w.q != nullptr
                    ? MatMulT(x, *w.q, pool_)
                    : MatMulT(RmsNormRows(MatMulT(x, *w.q_a, pool_), *w.q_norm, eps_), *w.q_b,
                              pool_);         // [tokens, heads * qk]
  const Mat kv = MatMulT(x, *w.kv_a, pool_);  // [tokens, kv_lora + rope]
  const Mat latent = RmsNormRows(kv.leftCols(kv_lora_), *w.kv_norm, eps_);
  for (int64_t t = 0; t < tokens; ++t) {
    float* slot = cache->Slot(layer, *chunks[rows.chunk[t]].block_table, rows.position[t]);
    std::copy_n(latent.row(t).data(), kv_lora_, slot);
    std::copy_n(kv.row(t).data() + kv_lora_, rope_dim_, slot + kv_lora_);
    Rope(slot + kv_lora_, rows.position[t]);
  }
  Mat o(tokens, heads_ * v_dim_);
  const auto run = [&](int64_t begin, int64_t end) {
    std::vector<float> q_lat(kv_lora_), q_rope(rope_dim_), o_lat(kv_lora_), scores;
    std::vector<const float*> slots;  // the token's cached positions, looked up once
    for (int64_t t = begin; t < end; ++t) {
      const std::vector<int32_t>& table = *chunks[rows.chunk[t]].block_table;
      const int64_t pos = rows.position[t];
      scores.resize(pos + 1);
      slots.resize(pos + 1);
      for (int64_t s = 0; s <= pos; ++s) slots[s] = cache->Slot(layer, table, s);
      for (int64_t h = 0; h < heads_; ++h) {
        const float* q_nope = q.row(t).data() + h * qk;
        std::copy_n(q_nope + nope_, rope_dim_, q_rope.data());
        Rope(q_rope.data(), pos);
        for (int64_t c = 0; c < kv_lora_; ++c)
          q_lat[c] = Dot(w.k_absorb[h].row(c).data(), q_nope, nope_);
        for (int64_t s = 0; s <= pos; ++s) {
          const float* slot = slots[s];
          scores[s] =
              (Dot(q_lat.data(), slot, kv_lora_) + Dot(q_rope.data(), slot + kv_lora_, rope_dim_)) *
              scale_;
        }
        const float sum = SoftmaxNumerators(absl::MakeSpan(scores));
        std::fill(o_lat.begin(), o_lat.end(), 0.0f);
        for (int64_t s = 0; s <= pos; ++s) {
          const float p = scores[s] / sum;
          const float* slot = slots[s];
          for (int64_t c = 0; c < kv_lora_; ++c) o_lat[c] += p * slot[c];
        }
        for (int64_t j = 0; j < v_dim_; ++j) {
          o(t, h * v_dim_ + j) = Dot(w.v_absorb[h].row(j).data(), o_lat.data(), kv_lora_);
        }
      }
    }
  };
  if (pool_ != nullptr && tokens > 1) {
    pool_->ParallelFor(0, tokens, run);
  } else {
    run(0, tokens);
  }
  return MatMulT(o, *w.o, pool_);
}

Mat IncrementalModel::StandardAttention(const Layer& w, int64_t layer, const Mat& x,
                                        absl::Span<const SequenceChunk> chunks, const Rows& rows,
                                        KvCache* cache) const {
  const int64_t tokens = x.rows();
  const int64_t width = heads_ * head_dim_;
  Mat q = MatMulT(x, *w.wq, pool_);
  Mat k = MatMulT(x, *w.wk, pool_);
  const Mat v = MatMulT(x, *w.wv, pool_);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < heads_; ++h) {
      Rope(q.row(t).data() + h * head_dim_, rows.position[t]);
      Rope(k.row(t).data() + h * head_dim_, rows.position[t]);
    }
    float* slot = cache->Slot(layer, *chunks[rows.chunk[t]].block_table, rows.position[t]);
    std::copy_n(k.row(t).data(), width, slot);
    std::copy_n(v.row(t).data(), width, slot + width);
  }
  Mat o = Mat::Zero(tokens, width);
  const auto run = [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    std::vector<const float*> slots;
    for (int64_t t = begin; t < end; ++t) {
      const std::vector<int32_t>& table = *chunks[rows.chunk[t]].block_table;
      const int64_t pos = rows.position[t];
      scores.resize(pos + 1);
      slots.resize(pos + 1);
      for (int64_t s = 0; s <= pos; ++s) slots[s] = cache->Slot(layer, table, s);
      for (int64_t h = 0; h < heads_; ++h) {
        const float* qh = q.row(t).data() + h * head_dim_;
        for (int64_t s = 0; s <= pos; ++s) {
          scores[s] = Dot(qh, slots[s] + h * head_dim_, head_dim_) * scale_;
        }
        const float sum = SoftmaxNumerators(absl::MakeSpan(scores));
        float* oh = o.row(t).data() + h * head_dim_;
        for (int64_t s = 0; s <= pos; ++s) {
          const float p = scores[s] / sum;
          const float* vs = slots[s] + width + h * head_dim_;
          for (int64_t d = 0; d < head_dim_; ++d) oh[d] += p * vs[d];
        }
      }
    }
  };
  if (pool_ != nullptr && tokens > 1) {
    pool_->ParallelFor(0, tokens, run);
  } else {
    run(0, tokens);
  }
  return MatMulT(o, *w.o, pool_);
}

Mat RunFfn(const FfnWeights& ffn, const Mat& x, core::ThreadPool* pool) {
  return MatMulT(SwiGlu(MatMulT(x, *ffn.gate, pool), MatMulT(x, *ffn.up, pool)), *ffn.down, pool);
}

std::vector<int64_t> IncrementalModel::MoeLayers() const {
  std::vector<int64_t> out;
  for (int64_t l = 0; l < num_layers(); ++l) {
    if (layers_[l].moe) out.push_back(l);
  }
  return out;
}

const FfnWeights& IncrementalModel::RoutedExpert(int64_t layer, int64_t expert) const {
  DSMOE_CHECK(layer >= 0 && layer < num_layers() && layers_[layer].moe, "layer ", layer,
              " is not an MoE layer");
  return layers_[layer].experts.at(expert);
}

void IncrementalModel::Route(const Layer& w, const float* logits, int32_t* experts,
                             float* weights) const {
  const model::MoeConfig& moe = config_.moe();
  const int64_t num_experts = moe.num_routed_experts();
  const bool softmax = moe.score_func() == "softmax";
  std::vector<float> scores(num_experts), biased(num_experts);
  if (softmax) {
    float max = -INFINITY;
    for (int64_t e = 0; e < num_experts; ++e) max = std::max(max, logits[e]);
    float sum = 0;
    for (int64_t e = 0; e < num_experts; ++e) sum += scores[e] = std::exp(logits[e] - max);
    for (int64_t e = 0; e < num_experts; ++e) scores[e] /= sum;
  } else {
    for (int64_t e = 0; e < num_experts; ++e) scores[e] = 1.0f / (1.0f + std::exp(-logits[e]));
  }
  for (int64_t e = 0; e < num_experts; ++e) {
    biased[e] = w.bias != nullptr ? scores[e] + (*w.bias)(0, e) : scores[e];
  }
  const int64_t groups = moe.num_groups();
  const int64_t group_size = num_experts / groups;
  const int64_t per_group = std::min<int64_t>(2, group_size);
  std::vector<float> group_scores(groups);
  for (int64_t g = 0; g < groups; ++g) {
    std::vector<int64_t> members(group_size);
    std::iota(members.begin(), members.end(), g * group_size);
    if (w.bias == nullptr) {
      group_scores[g] = biased[TopIndices(biased, members, 1)[0]];
      continue;
    }
    group_scores[g] = 0;
    for (int64_t e : TopIndices(biased, members, per_group)) group_scores[g] += biased[e];
  }
  std::vector<int64_t> all_groups(groups);
  std::iota(all_groups.begin(), all_groups.end(), 0);
  std::vector<int64_t> kept = TopIndices(group_scores, all_groups, moe.topk_groups());
  std::sort(kept.begin(), kept.end());
  std::vector<int64_t> candidates;
  for (int64_t g : kept) {
    for (int64_t e = g * group_size; e < (g + 1) * group_size; ++e) candidates.push_back(e);
  }
  const std::vector<int64_t> chosen = TopIndices(biased, candidates, moe.top_k());
  float sum = 0;
  for (int64_t e : chosen) sum += scores[e];
  const float route_scale = static_cast<float>(moe.route_scale());
  for (int64_t j = 0; j < moe.top_k(); ++j) {
    experts[j] = static_cast<int32_t>(chosen[j]);
    weights[j] = softmax ? scores[chosen[j]] * route_scale : scores[chosen[j]] / sum * route_scale;
  }
}

absl::StatusOr<Mat> IncrementalModel::Moe(const Layer& w, int64_t moe_layer, const Mat& x,
                                          std::vector<int64_t>* loads,
                                          MoeExecutor* executor) const {
  const int64_t tokens = x.rows();
  const int64_t top_k = config_.moe().top_k();
  const int64_t num_experts = config_.moe().num_routed_experts();
  const Mat logits = MatMulT(x, *w.router, pool_);  // [tokens, experts]
  std::vector<int32_t> experts(tokens * top_k);
  std::vector<float> weights(tokens * top_k);
  for (int64_t t = 0; t < tokens; ++t) {
    Route(w, logits.row(t).data(), &experts[t * top_k], &weights[t * top_k]);
  }
  loads->assign(num_experts, 0);
  std::vector<std::vector<int64_t>> slots(num_experts);  // slot t * top_k + j per expert
  for (int64_t i = 0; i < tokens * top_k; ++i) {
    ++(*loads)[experts[i]];
    slots[experts[i]].push_back(i);
  }
  Mat out;  // [tokens * top_k, hidden], by slot
  if (executor != nullptr) {
    ASSIGN_OR_RETURN(out, executor->RunRoutedExperts(moe_layer, x, experts, top_k));
  } else {
    out.resize(tokens * top_k, x.cols());
    for (int64_t e = 0; e < num_experts; ++e) {
      if (slots[e].empty()) continue;
      Mat in(static_cast<int64_t>(slots[e].size()), x.cols());
      for (size_t i = 0; i < slots[e].size(); ++i) in.row(i) = x.row(slots[e][i] / top_k);
      const Mat y = RunFfn(w.experts[e], in, pool_);
      for (size_t i = 0; i < slots[e].size(); ++i) out.row(slots[e][i]) = y.row(i);
    }
  }
  Mat y = Mat::Zero(tokens, x.cols());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < top_k; ++j) y.row(t) += weights[t * top_k + j] * out.row(t * top_k + j);
  }
  if (w.has_shared) y += RunFfn(w.shared, x, pool_);
  return y;
}

}  // namespace serving
