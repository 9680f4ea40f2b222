// RMSNorm: y = x / sqrt(mean(x^2) + eps) * g, per row, with a learned scale g [width].
#ifndef MODEL_RMS_NORM_H_
#define MODEL_RMS_NORM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/matrix.h"

namespace model {

// Forward and BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight writes the gradient and must not race with another BackwardWeight.
template <typename T>
class RmsNorm {
 public:
  struct Context {
    Matrix<T> x;        // [tokens, width]
    Matrix<T> inv_rms;  // [tokens, 1]: 1 / sqrt(mean(x^2) + eps)
    Matrix<T> dy;       // [tokens, width], kept by BackwardInput for BackwardWeight
  };

  // `name` names the scale, e.g. "model.norm.weight". CHECKs width > 0 and eps > 0.
  RmsNorm(std::string name, int64_t width, double eps);

  // x [tokens, width] -> [tokens, width]. CHECKs the width.
  Matrix<T> Forward(const Matrix<T>& x, Context* ctx) const;
  // dy [tokens, width] -> dx [tokens, width]. Moves dy into ctx.
  Matrix<T> BackwardInput(Matrix<T> dy, Context* ctx) const;
  // scale.grad += sum over tokens of dy * x * inv_rms; frees ctx's matrices.
  void BackwardWeight(Context* ctx);

  // The scale [width] (owned by this layer).
  std::vector<Param<T>*> Params() { return {&scale_}; }

 private:
  Param<T> scale_;  // [1, width], stored as [width]
  T eps_;
};

}  // namespace model

#endif  // MODEL_RMS_NORM_H_
