// Seeded random numbers and parameter initialisation. Results depend only on the seed and each
// parameter's name (not on the order or the process that initialises it), so every pipeline stage
// or expert-parallel rank that builds part of a model gets the same weights as a whole model.
#ifndef MODEL_INIT_H_
#define MODEL_INIT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/matrix.h"

namespace model {

// A small deterministic generator (SplitMix64) with uniform and normal draws. Identical seeds give
// identical sequences on every platform. Not thread-safe; use one per thread.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, 1).
  double Uniform();
  // Standard normal (Box-Muller).
  double Normal();

 private:
  uint64_t state_;
};

// A seed for `name` under `seed` (FNV-1a of the name mixed with the seed).
uint64_t SeedFor(uint64_t seed, const std::string& name);

// Initialises each parameter by its kind (see ParamKind): kMatrix from N(0, std^2) drawn from
// Rng(SeedFor(seed, name)), kNormScale to ones, kBuffer to zeros. Zeroes the gradients.
template <typename T>
void InitParams(const std::vector<Param<T>*>& params, double std, uint64_t seed);

// A [rows, cols] matrix of values uniform in [-scale, scale) from Rng(seed); for inputs in tests
// and benchmarks.
template <typename T>
Matrix<T> RandomMatrix(int64_t rows, int64_t cols, uint64_t seed, double scale = 1.0);

}  // namespace model

#endif  // MODEL_INIT_H_
