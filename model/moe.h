// The DeepSeek-V3 MoE block: y = shared experts(x) + sum over the chosen experts e of
// weight(x, e) * expert_e(x), with the router of moe_gate.h and SwiGLU experts.
//
// Expert parallelism: the routed experts are sharded over ep_size ranks (rank r owns experts
// [r * L, (r + 1) * L), L = experts / ep_size); the gate and the shared experts are replicated and
// each rank routes its own tokens. The block is split into phases so that the caller can put an
// all-to-all between them (and run one micro-batch's compute while another's is in flight):
//
//   forward:  ForwardDispatch -> [all-to-all] -> ForwardExperts -> [all-to-all] -> ForwardCombine
//   backward: BackwardCombine -> [all-to-all] -> BackwardExperts -> [all-to-all] -> (continued)
//             BackwardDispatch
//
// Dispatch all-to-all: a rank sends ExpertRows::rows, grouped by expert and so by destination
// rank (RowsPerRank gives the row counts per peer), and each destination gets the per-expert
// counts of its L experts from every source; it passes the rows it receives (source-major) and
// those counts (recv_counts[source * L + l]) to ForwardExperts. The combine all-to-all returns
// ForwardExperts' output rows, in the same layout, to their sources, which then hold them in
// their own expert order again. The backward all-to-alls move gradients the same two ways.
// model/expert_exchange.h does these moves over a comm::Communicator. Forward/BackwardInput
// below run the phases back to back when ep_size == 1.
#ifndef MODEL_MOE_H_
#define MODEL_MOE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.pb.h"
#include "model/matrix.h"
#include "model/mlp.h"
#include "model/moe_gate.h"
#include "model/token_permute.h"

namespace model {

// Rows in expert order, with how many rows each expert (of all experts) has.
template <typename T>
struct ExpertRows {
  Matrix<T> rows;                      // [routed slots, hidden]
  std::vector<int64_t> expert_counts;  // [experts]
};

// Row counts per destination rank of expert-ordered rows: sums of expert_counts over each rank's
// contiguous experts. CHECKs that ep_size divides expert_counts.size().
std::vector<int64_t> RowsPerRank(const std::vector<int64_t>& expert_counts, int ep_size);

// Phases and Forward/BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight and UpdateBias write and must not race with anything else.
template <typename T>
class Moe {
 public:
  struct Context {
    // This rank's tokens.
    typename MoeGate<T>::Context gate;
    typename Mlp<T>::Context shared;
    Matrix<T> shared_out;  // [tokens, hidden], between ForwardDispatch and ForwardCombine
    DispatchPlan plan;
    Matrix<T> weights;           // [tokens, top_k]: the routing weights
    Matrix<T> expert_out;        // [slots, hidden]: the returned expert outputs, expert order
    Matrix<T> d_weights;         // [tokens, top_k], between BackwardCombine and BackwardDispatch
    Matrix<T> dx_shared;         // [tokens, hidden], likewise
    std::vector<int64_t> loads;  // tokens routed to each expert (all experts) by this forward
    T aux_loss = 0;              // the gate's sequence-wise balance loss (0 when disabled)
    // Rows received by this rank's experts.
    std::vector<int64_t> recv_counts;               // ForwardExperts' recv_counts
    std::vector<int64_t> order;                     // expert-major position -> received row
    std::vector<int64_t> local_offsets;             // [L + 1] into `order`
    std::vector<typename Mlp<T>::Context> experts;  // one per local expert
  };

  // Weights named prefix + "gate.", "shared_experts.", "experts.<e>." (prefix e.g.
  // "model.layers.3.mlp."), holding the routed experts of rank ep_rank of ep_size. `moe` must
  // have passed ValidateConfig; CHECKs 0 <= ep_rank < ep_size and that ep_size divides the experts.
  Moe(const std::string& prefix, int64_t hidden, const MoeConfig& moe, int ep_rank = 0,
      int ep_size = 1);

  // x [tokens, hidden] -> [tokens, hidden], all phases with no exchange. CHECKs ep_size == 1.
  Matrix<T> Forward(const Matrix<T>& x, const BatchInfo& batch, Context* ctx) const;
  // dy [tokens, hidden] -> dx [tokens, hidden]. CHECKs ep_size == 1.
  Matrix<T> BackwardInput(Matrix<T> dy, Context* ctx) const;

  // Routes x [tokens, hidden], runs the shared experts, and returns the rows to dispatch.
  ExpertRows<T> ForwardDispatch(const Matrix<T>& x, const BatchInfo& batch, Context* ctx) const;
  // rows received from every source rank (source-major), recv_counts [sources * L] -> this
  // rank's expert outputs in the same layout.
  Matrix<T> ForwardExperts(const Matrix<T>& rows, const std::vector<int64_t>& recv_counts,
                           Context* ctx) const;
  // The returned expert outputs, in this rank's expert order -> y [tokens, hidden].
  Matrix<T> ForwardCombine(Matrix<T> expert_out, Context* ctx) const;
  // dy [tokens, hidden] -> gradient rows for the experts, in this rank's expert order.
  Matrix<T> BackwardCombine(Matrix<T> dy, Context* ctx) const;
  // Gradient rows in ForwardExperts' output layout -> input-gradient rows, same layout.
  Matrix<T> BackwardExperts(const Matrix<T>& d_rows, Context* ctx) const;
  // The returned input-gradient rows, in this rank's expert order -> dx [tokens, hidden].
  Matrix<T> BackwardDispatch(const Matrix<T>& dx_rows, Context* ctx) const;

  // Accumulates the gate's, the shared experts' and the local experts' gradients; frees ctx.
  void BackwardWeight(Context* ctx);

  // Moves the gate's selection bias towards balance (see MoeGate::UpdateBias); `loads` are the
  // whole EP group's, so that every rank's replicated gate stays identical.
  void UpdateBias(const std::vector<int64_t>& loads) { gate_.UpdateBias(loads); }

  int64_t num_experts() const { return gate_.num_experts(); }
  const MoeGate<T>& gate() const { return gate_; }
  int64_t num_local_experts() const { return static_cast<int64_t>(experts_.size()); }
  int ep_size() const { return ep_size_; }
  // The gate (weight and bias), the shared experts, then the local routed experts.
  std::vector<Param<T>*> Params();
  // The local routed experts' parameters (the tail of Params()).
  std::vector<Param<T>*> ExpertParams();

 private:
  int ep_size_;
  MoeGate<T> gate_;
  std::unique_ptr<Mlp<T>> shared_;  // null without shared experts
  std::vector<Mlp<T>> experts_;     // the local experts
};

}  // namespace model

#endif  // MODEL_MOE_H_
