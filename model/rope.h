// Rotary position embedding (RoPE) on the interleaved pairs of each head, as in DeepSeek-V3's
// reference (view_as_complex over pairs): for the pair (x[2i], x[2i+1]) of a head at position p,
// angle = p * theta^(-2i / head_dim), and the pair is rotated by +angle (forward) or -angle (the
// backward of the forward, since a rotation's transpose is its inverse).
#ifndef MODEL_ROPE_H_
#define MODEL_ROPE_H_

#include <cstdint>

#include "model/matrix.h"

namespace model {

// Rotates x [tokens, num_heads * head_dim] in place. Token t is at position t % seq_len (tokens
// hold whole sequences of seq_len back to back). CHECKs the shapes, an even head_dim, and that
// seq_len divides the token count.
template <typename T>
void ApplyRope(Matrix<T>* x, int64_t num_heads, int64_t head_dim, int64_t seq_len, double theta,
               bool inverse);

}  // namespace model

#endif  // MODEL_ROPE_H_
