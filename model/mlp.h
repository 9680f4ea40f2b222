// SwiGLU MLP: y = (silu(x Wg^T) * (x Wu^T)) Wd^T, the dense FFN, each routed expert and the shared
// experts of an MoE block.
#ifndef MODEL_MLP_H_
#define MODEL_MLP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/linear.h"
#include "model/matrix.h"

namespace model {

// Forward and BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight writes the gradients and must not race with another BackwardWeight.
template <typename T>
class Mlp {
 public:
  struct Context {
    typename Linear<T>::Context gate_proj, up_proj, down_proj;
    Matrix<T> gate, up;  // [tokens, intermediate]: x Wg^T and x Wu^T
  };

  // Weights named prefix + "gate_proj.weight", "up_proj.weight", "down_proj.weight".
  Mlp(const std::string& prefix, int64_t hidden, int64_t intermediate);

  // x [tokens, hidden] -> [tokens, hidden].
  Matrix<T> Forward(const Matrix<T>& x, Context* ctx) const;
  // dy [tokens, hidden] -> dx [tokens, hidden].
  Matrix<T> BackwardInput(Matrix<T> dy, Context* ctx) const;
  // Accumulates the three projections' gradients; frees ctx.
  void BackwardWeight(Context* ctx);

  // The gate, up and down projection weights, in that order (owned by this layer).
  std::vector<Param<T>*> Params();

 private:
  Linear<T> gate_proj_, up_proj_, down_proj_;
};

}  // namespace model

#endif  // MODEL_MLP_H_
