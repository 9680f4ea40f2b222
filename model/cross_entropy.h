// Softmax cross-entropy of next-token logits, averaged over the tokens that have a target.
#ifndef MODEL_CROSS_ENTROPY_H_
#define MODEL_CROSS_ENTROPY_H_

#include <cstdint>
#include <vector>

#include "model/matrix.h"

namespace model {

// A target that contributes neither loss nor gradient (padding).
inline constexpr int32_t kIgnoreTarget = -1;

// logits [tokens, vocab]; targets [tokens], each in [0, vocab) or kIgnoreTarget (CHECKed).
// Returns mean over counted tokens of -log softmax(logits)[target] (0 if none counts), and, if
// dlogits is not null, sets it to the gradient of that mean times loss_scale (for micro-batches
// whose losses are summed into a larger batch).
template <typename T>
T CrossEntropy(const Matrix<T>& logits, const std::vector<int32_t>& targets, Matrix<T>* dlogits,
               T loss_scale = T(1));

}  // namespace model

#endif  // MODEL_CROSS_ENTROPY_H_
