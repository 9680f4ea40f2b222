#include "eplb/synthetic_loads.h"

#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

#include "core/check.h"

namespace eplb {
namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

Matrix<double> ZipfLoads(int layers, int experts, double exponent, double tokens_per_layer,
                         uint64_t seed) {
  DSMOE_CHECK(layers > 0 && experts > 0 && exponent >= 0 && tokens_per_layer >= 0);
  std::vector<double> share(experts);
  for (int r = 0; r < experts; ++r) share[r] = std::pow(r + 1.0, -exponent);
  const double total = std::accumulate(share.begin(), share.end(), 0.0);
  Matrix<double> loads(layers, experts);
  std::vector<int> order(experts);
  uint64_t state = seed;
  for (int layer = 0; layer < layers; ++layer) {
    std::iota(order.begin(), order.end(), 0);
    for (int i = experts - 1; i > 0; --i) {
      std::swap(order[i], order[SplitMix64(state) % (i + 1)]);
    }
    for (int r = 0; r < experts; ++r) {
      loads(layer, order[r]) = std::floor(tokens_per_layer * share[r] / total);
    }
  }
  return loads;
}

}  // namespace eplb
