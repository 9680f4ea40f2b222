#include "model/init.h"

#include <cmath>

namespace model {

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

double Rng::Normal() {
  const double u1 = 1.0 - Uniform();  // (0, 1]: log is finite
  const double u2 = Uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

uint64_t SeedFor(uint64_t seed, const std::string& name) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : name) hash = (hash ^ c) * 0x100000001b3ull;
  return Rng(hash ^ seed).Next();
}

template <typename T>
void InitParams(const std::vector<Param<T>*>& params, double std, uint64_t seed) {
  for (Param<T>* p : params) {
    switch (p->kind) {
      case ParamKind::kMatrix: {
        Rng rng(SeedFor(seed, p->name));
        T* data = p->value.data();
        for (int64_t i = 0; i < p->value.size(); ++i) data[i] = static_cast<T>(std * rng.Normal());
        break;
      }
      case ParamKind::kNormScale:
        p->value.setOnes();
        break;
      case ParamKind::kBuffer:
        p->value.setZero();
        break;
    }
    if (p->trainable()) p->grad.setZero();
  }
}

template <typename T>
Matrix<T> RandomMatrix(int64_t rows, int64_t cols, uint64_t seed, double scale) {
  Rng rng(seed);
  Matrix<T> m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) {
    m.data()[i] = static_cast<T>(scale * (2.0 * rng.Uniform() - 1.0));
  }
  return m;
}

template void InitParams<float>(const std::vector<Param<float>*>&, double, uint64_t);
template void InitParams<double>(const std::vector<Param<double>*>&, double, uint64_t);
template Matrix<float> RandomMatrix<float>(int64_t, int64_t, uint64_t, double);
template Matrix<double> RandomMatrix<double>(int64_t, int64_t, uint64_t, double);

}  // namespace model
