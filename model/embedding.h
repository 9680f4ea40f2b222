// Embedding: token ids -> rows of a learned table [vocab, width].
#ifndef MODEL_EMBEDDING_H_
#define MODEL_EMBEDDING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/matrix.h"

namespace model {

// Forward and BackwardInput are const and may run concurrently on different contexts;
// BackwardWeight writes the gradient and must not race with another BackwardWeight.
template <typename T>
class Embedding {
 public:
  struct Context {
    std::vector<int32_t> ids;  // [tokens]
    Matrix<T> dy;              // [tokens, width], kept by BackwardInput for BackwardWeight
  };

  Embedding(std::string name, int64_t vocab, int64_t width);

  int64_t vocab() const { return table_.value.rows(); }

  // ids [tokens] -> [tokens, width]. CHECKs 0 <= id < vocab (callers validate untrusted ids).
  Matrix<T> Forward(const std::vector<int32_t>& ids, Context* ctx) const;
  // Token ids have no gradient: only keeps dy [tokens, width] for BackwardWeight.
  void BackwardInput(Matrix<T> dy, Context* ctx) const;
  // table.grad[id] += dy[t] for every token t; frees ctx.
  void BackwardWeight(Context* ctx);

  // The table [vocab, width] (owned by this layer).
  std::vector<Param<T>*> Params() { return {&table_}; }

 private:
  Param<T> table_;  // [vocab, width]
};

}  // namespace model

#endif  // MODEL_EMBEDDING_H_
