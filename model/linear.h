// Linear: y = x W^T with W [out, in] and no bias, the GEMM building block of every layer.
#ifndef MODEL_LINEAR_H_
#define MODEL_LINEAR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/matrix.h"

namespace model {

// Forward and BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight writes the gradient and must not race with another BackwardWeight.
template <typename T>
class Linear {
 public:
  // What one micro-batch leaves between its passes.
  struct Context {
    Matrix<T> x;   // [tokens, in], saved by Forward
    Matrix<T> dy;  // [tokens, out], saved by BackwardInput for BackwardWeight
  };

  // A zero [out, in] weight named `name` (initialise it through Params()).
  Linear(std::string name, int64_t in, int64_t out);

  int64_t in() const { return weight_.value.cols(); }
  int64_t out() const { return weight_.value.rows(); }

  // x [tokens, in] -> [tokens, out]. Copies x into ctx. CHECKs x.cols() == in().
  Matrix<T> Forward(const Matrix<T>& x, Context* ctx) const;
  // dy [tokens, out] -> dx [tokens, in]. Moves dy into ctx. CHECKs dy matches ctx's forward.
  Matrix<T> BackwardInput(Matrix<T> dy, Context* ctx) const;
  // weight.grad += dy^T x for ctx's micro-batch, then frees ctx's matrices.
  void BackwardWeight(Context* ctx);

  // The weight [out, in] (owned by this layer); Params() lists it alone.
  Param<T>& weight() { return weight_; }
  const Param<T>& weight() const { return weight_; }
  std::vector<Param<T>*> Params() { return {&weight_}; }

 private:
  Param<T> weight_;  // [out, in]
};

}  // namespace model

#endif  // MODEL_LINEAR_H_
