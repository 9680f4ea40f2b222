// Synthetic expert loads for tests, benchmarks and demos: Zipf-skewed token counts, with the hot
// experts at a random (seeded, platform-independent) position in each layer.
#ifndef EPLB_SYNTHETIC_LOADS_H_
#define EPLB_SYNTHETIC_LOADS_H_

#include <cstdint>

#include "eplb/matrix.h"

namespace eplb {

// Loads [layers, experts]: in each layer the expert of popularity rank r (1-based) receives
// floor(tokens_per_layer * r^-exponent / H) tokens, H = sum over ranks of r^-exponent, and ranks
// are shuffled onto experts by a SplitMix64 stream seeded with `seed`, so results are identical
// on every platform. Preconditions: layers > 0, experts > 0, exponent >= 0, tokens_per_layer >= 0.
Matrix<double> ZipfLoads(int layers, int experts, double exponent, double tokens_per_layer,
                         uint64_t seed);

}  // namespace eplb

#endif  // EPLB_SYNTHETIC_LOADS_H_
