// The DeepSeek MoE router (gate) of every model family, as DeepSeek-V3's reference Gate defines
// it, with auxiliary-loss-free balancing when it has a bias:
//   s = sigmoid(x Wg^T) or softmax(x Wg^T) per token (moe.score_func)     [tokens, experts]
//   with the bias b (GateHasBias): group score = sum of the top-2 of (s + b) in each group;
//   without: group score = the group's largest s; keep the best topk_groups groups;
//   choose the top_k experts by (s + b), or s, among the kept groups' experts;
//   weights = s of the chosen experts, divided by their sum for sigmoid only, times route_scale.
// DeepSeek-V3 is sigmoid with the bias, V2 softmax without. The bias b only steers selection: it
// gets no gradient, and UpdateBias moves it once per optimizer step,
// b_i += gamma * sign(mean load - load_i). Ties go to the lower index.
//
// Optional sequence-wise balance loss (alpha = sequence_aux_loss_alpha > 0), per sequence of T
// tokens, averaged over the sequences: L = alpha sum_i f_i P_i with
// f_i = E / (top_k T) * (tokens choosing i) (a constant) and P_i = mean over tokens of
// s_i / sum_j s_j. Forward reports it; BackwardInput adds its gradient (times loss_scale).
#ifndef MODEL_MOE_GATE_H_
#define MODEL_MOE_GATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.pb.h"
#include "model/linear.h"
#include "model/matrix.h"

namespace model {

// What a forward pass needs to know about its micro-batch besides the activations.
struct BatchInfo {
  int64_t seq_len = 0;      // tokens hold whole sequences of seq_len (> 0)
  double loss_scale = 1.0;  // multiplies the gradients of losses computed inside the model
};

template <typename T>
struct Routing {
  int64_t top_k = 0;
  // [tokens * top_k]: token t's chosen experts at [t * top_k, (t + 1) * top_k), best first.
  std::vector<int32_t> experts;
  Matrix<T> weights;  // [tokens, top_k], matching `experts`
  T aux_loss = 0;     // the sequence-wise balance loss (0 when disabled)
};

// Forward and BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight and UpdateBias write and must not race with anything else.
template <typename T>
class MoeGate {
 public:
  struct Context {
    typename Linear<T>::Context proj;
    Matrix<T> scores;              // [tokens, experts]: sigmoid or softmax of the logits
    std::vector<int32_t> experts;  // as Routing::experts
    int64_t seq_len = 0;
    T aux_coefficient = 0;  // alpha * loss_scale / (seq_len * sequences); 0 when disabled
    Matrix<T> aux_f;        // [sequences, experts]: f_i of each sequence
  };

  // Weight prefix + "weight" [experts, hidden] and, if GateHasBias(moe, hidden), bias prefix +
  // "e_score_correction_bias" [experts] (a buffer). `moe` must have passed ValidateConfig.
  MoeGate(const std::string& prefix, int64_t hidden, const MoeConfig& moe);

  int64_t num_experts() const { return num_experts_; }
  bool has_bias() const { return has_bias_; }
  bool is_softmax() const { return softmax_; }

  // x [tokens, hidden] -> the routing of every token. CHECKs that batch.seq_len divides tokens.
  Routing<T> Forward(const Matrix<T>& x, const BatchInfo& batch, Context* ctx) const;
  // d_weights [tokens, top_k] (gradient of the routing weights) -> dx [tokens, hidden],
  // including the balance loss's gradient.
  Matrix<T> BackwardInput(const Matrix<T>& d_weights, Context* ctx) const;
  // weight.grad += the gradient of ctx's micro-batch; frees ctx's saved input.
  void BackwardWeight(Context* ctx);

  // b_i += bias_update_speed * sign(mean(loads) - loads[i]); nothing without a bias. CHECKs
  // loads.size() == experts.
  void UpdateBias(const std::vector<int64_t>& loads);

  // The weight and, if the gate has one, the bias (a non-trainable buffer).
  std::vector<Param<T>*> Params() {
    if (!has_bias_) return {&proj_.weight()};
    return {&proj_.weight(), &bias_};
  }

 private:
  int64_t num_experts_;
  int64_t top_k_;
  int64_t num_groups_;
  int64_t topk_groups_;
  bool softmax_;   // score function softmax (else sigmoid)
  bool has_bias_;  // bias_ takes part in selection and is a parameter
  T route_scale_;
  T bias_update_speed_;
  T aux_alpha_;
  Linear<T> proj_;
  Param<T> bias_;  // [1, experts], stored as [experts]; zeros when !has_bias_
};

// How many of `experts` (as Routing::experts) go to each of num_experts experts.
std::vector<int64_t> ExpertLoads(const std::vector<int32_t>& experts, int64_t num_experts);

}  // namespace model

#endif  // MODEL_MOE_GATE_H_
