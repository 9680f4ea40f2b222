// The DeepSeek-V3 MoE block: y = shared experts(x) + sum over the chosen experts e of
// weight(x, e) * expert_e(x), with the router of moe_gate.h and SwiGLU experts. The forward runs
// route -> permute to expert order (dispatch) -> experts -> weighted combine; the backward mirrors
// it. All experts are local here (expert parallelism of one).
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

// Forward and BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight and UpdateBias write and must not race with anything else.
template <typename T>
class Moe {
 public:
  struct Context {
    typename MoeGate<T>::Context gate;
    typename Mlp<T>::Context shared;
    std::vector<typename Mlp<T>::Context> experts;  // one per routed expert
    DispatchPlan plan;
    Matrix<T> weights;           // [tokens, top_k]: the routing weights
    Matrix<T> expert_out;        // [tokens * top_k, hidden]: expert outputs in expert order
    std::vector<int64_t> loads;  // tokens routed to each expert by this forward
  };

  // Weights named prefix + "gate.", "shared_experts.", "experts.<e>." (prefix e.g.
  // "model.layers.3.mlp."). `moe` must have passed ValidateConfig.
  Moe(const std::string& prefix, int64_t hidden, const MoeConfig& moe);

  // x [tokens, hidden] -> [tokens, hidden]. Sets ctx->loads.
  Matrix<T> Forward(const Matrix<T>& x, Context* ctx) const;
  // dy [tokens, hidden] -> dx [tokens, hidden].
  Matrix<T> BackwardInput(Matrix<T> dy, Context* ctx) const;
  // Accumulates the gate's, the shared experts' and every routed expert's gradients; frees ctx.
  void BackwardWeight(Context* ctx);

  // Moves the gate's selection bias towards balance (see MoeGate::UpdateBias).
  void UpdateBias(const std::vector<int64_t>& loads) { gate_.UpdateBias(loads); }

  int64_t num_experts() const { return gate_.num_experts(); }
  std::vector<Param<T>*> Params();

 private:
  MoeGate<T> gate_;
  std::unique_ptr<Mlp<T>> shared_;  // null without shared experts
  std::vector<Mlp<T>> experts_;
};

}  // namespace model

#endif  // MODEL_MOE_H_
