// The KV-cached incremental forward of a whole model: any mix of prefill chunks and decode tokens
// of different sequences in one call, each token attending to its own sequence's cached slots.
// Built beside ModelStage::InferenceForward from the same weights (read from the stage's
// parameters by their checkpoint names) and checked against it (incremental_model_test).
//
// MLA layers cache, per token, the normalised latent kv_norm(c) and the rotated rope key
// ([kv_lora_rank | qk_rope_head_dim] floats), and attend in the absorbed form of DeepSeek-V3's
// reference: q_nope is taken into the latent space through kv_b's key half, the scores are
// q_lat . c + q_rope . k_rope, and the latent output goes through kv_b's value half. Standard
// attention caches the rotated keys and the values of every head.
//
// Every kernel is batch invariant (serving/kernels.h): a token's logits do not depend on what
// else is in the call, bit for bit.
#ifndef SERVING_INCREMENTAL_MODEL_H_
#define SERVING_INCREMENTAL_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/thread_pool.h"
#include "core/trace.h"
#include "model/config.pb.h"
#include "model/model_stage.h"
#include "serving/kernels.h"
#include "serving/kv_cache.h"

namespace serving {

// Tokens at positions [start, start + tokens.size()) of one sequence. Positions before `start`
// must already be in the cache under `block_table`, which must cover start + tokens.size().
struct SequenceChunk {
  absl::Span<const int32_t> tokens;
  int64_t start = 0;
  const std::vector<int32_t>* block_table = nullptr;
  // Logits wanted: 0 none, 1 the last token's, -1 every token's.
  int logits = 1;
};

// Which expert each routed token went to in one call: loads[moe layer][expert] token counts.
using ExpertLoads = std::vector<std::vector<int64_t>>;

// A SwiGLU FFN's weights (not owned).
struct FfnWeights {
  const Mat* gate = nullptr;  // [intermediate, hidden]
  const Mat* up = nullptr;
  const Mat* down = nullptr;  // [hidden, intermediate]
};

// down(silu(x gate^T) * (x up^T)), with the batch-invariant kernels; `pool` may be null.
Mat RunFfn(const FfnWeights& ffn, const Mat& x, core::ThreadPool* pool);

// Runs the routed experts of MoE layers somewhere else (serving/expert_parallel.h: on EP ranks
// holding EPLB's physical replicas). Called from the engine's step thread only.
class MoeExecutor {
 public:
  virtual ~MoeExecutor() = default;
  // x [tokens, hidden]; experts [tokens * top_k]: token t's chosen logical experts at
  // [t * top_k, (t + 1) * top_k). Returns the expert outputs [tokens * top_k, hidden] in the same
  // order. `moe_layer` counts MoE layers from 0. Errors are the executor's (communication).
  virtual absl::StatusOr<Mat> RunRoutedExperts(int64_t moe_layer, const Mat& x,
                                               absl::Span<const int32_t> experts,
                                               int64_t top_k) = 0;
};

class IncrementalModel {
 public:
  // Reads the weights of `stage` (a whole model: StageRange::Whole, ep_size 1; CHECKed), which
  // must outlive this object and not change while it is used. `pool` (may be null) runs the
  // matrix products; it must outlive this object.
  IncrementalModel(model::ModelStage<float>& stage, core::ThreadPool* pool);

  const model::ModelConfig& config() const { return config_; }
  // Floats per token and layer in the cache (see the file comment).
  int64_t cache_width() const { return cache_width_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  // Weights read by one decode token: everything but the embedding table and the routed experts
  // a token does not choose (top_k of them per MoE layer), in bytes.
  int64_t ActiveWeightBytes() const;

  // Runs `chunks` (in order; a sequence at most once), writing their tokens' slots into `cache`,
  // and returns the logits [rows, vocab] each chunk asked for, chunk by chunk. If `loads` is not
  // null it receives the routed tokens per expert of every MoE layer. INVALID_ARGUMENT for a
  // token id outside the vocabulary, a position at or beyond max_seq_len, or a block table that
  // does not cover a chunk.
  // With `executor`, the routed experts run there instead of here. With `trace`, every layer's
  // attention and FFN are recorded as spans (pid 0, tid 0).
  absl::StatusOr<Mat> Forward(absl::Span<const SequenceChunk> chunks, KvCache* cache,
                              ExpertLoads* loads = nullptr, MoeExecutor* executor = nullptr,
                              core::TraceRecorder* trace = nullptr) const;

  // The MoE layers' indices among all layers, in order.
  std::vector<int64_t> MoeLayers() const;
  // Routed expert `expert` of layer `layer` (an MoE layer; CHECKed).
  const FfnWeights& RoutedExpert(int64_t layer, int64_t expert) const;

 private:
  using Ffn = FfnWeights;
  struct Layer {
    const Mat* attn_norm = nullptr;
    const Mat* ffn_norm = nullptr;
    // MLA (q is set without a query bottleneck, q_a / q_norm / q_b with one).
    const Mat *q = nullptr, *q_a = nullptr, *q_norm = nullptr, *q_b = nullptr;
    const Mat *kv_a = nullptr, *kv_norm = nullptr, *o = nullptr;
    std::vector<Mat> k_absorb;  // MLA: per head [kv_lora, nope]: kv_b's key rows, transposed
    std::vector<Mat> v_absorb;  // MLA: per head [v_dim, kv_lora] (kv_b's value rows of the head)
    // Standard attention.
    const Mat *wq = nullptr, *wk = nullptr, *wv = nullptr;
    // FFN: dense, or router + routed experts (+ shared).
    bool moe = false;
    Ffn dense;
    const Mat* router = nullptr;  // [experts, hidden]
    const Mat* bias = nullptr;    // [1, experts] or null
    std::vector<Ffn> experts;
    bool has_shared = false;
    Ffn shared;
  };

  // Rows of a batch: the sequence chunk and position of every token.
  struct Rows {
    std::vector<int64_t> chunk;     // [tokens]
    std::vector<int64_t> position;  // [tokens]
  };

  Mat Attention(int64_t layer, const Mat& x, absl::Span<const SequenceChunk> chunks,
                const Rows& rows, KvCache* cache) const;
  Mat MlaAttention(const Layer& w, int64_t layer, const Mat& x,
                   absl::Span<const SequenceChunk> chunks, const Rows& rows, KvCache* cache) const;
  Mat StandardAttention(const Layer& w, int64_t layer, const Mat& x,
                        absl::Span<const SequenceChunk> chunks, const Rows& rows,
                        KvCache* cache) const;
  absl::StatusOr<Mat> Moe(const Layer& w, int64_t moe_layer, const Mat& x,
                          std::vector<int64_t>* loads, MoeExecutor* executor) const;
  // Routes one token's scores as model::MoeGate does: chosen experts (best first) and weights.
  void Route(const Layer& w, const float* logits, int32_t* experts, float* weights) const;
  // Rotates pairs of x [pairs * 2] at position `pos` (interleaved RoPE).
  void Rope(float* x, int64_t pos) const;

  model::ModelConfig config_;
  core::ThreadPool* pool_;
  const Mat* embedding_ = nullptr;
  const Mat* norm_ = nullptr;
  const Mat* head_ = nullptr;
  std::vector<Layer> layers_;
  float eps_;
  bool mla_;
  int64_t heads_, nope_, rope_dim_, v_dim_, kv_lora_, head_dim_;
  float scale_;
  std::vector<float> cos_, sin_;  // [max_seq_len, rope pairs]
  int64_t cache_width_;
};

}  // namespace serving

#endif  // SERVING_INCREMENTAL_MODEL_H_
