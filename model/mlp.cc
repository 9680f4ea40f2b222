#include "model/mlp.h"

namespace model {

template <typename T>
Mlp<T>::Mlp(const std::string& prefix, int64_t hidden, int64_t intermediate)
    : gate_proj_(prefix + "gate_proj.weight", hidden, intermediate),
      up_proj_(prefix + "up_proj.weight", hidden, intermediate),
      down_proj_(prefix + "down_proj.weight", intermediate, hidden) {}

template <typename T>
std::vector<Param<T>*> Mlp<T>::Params() {
  return {&gate_proj_.weight(), &up_proj_.weight(), &down_proj_.weight()};
}

template <typename T>
Matrix<T> Mlp<T>::Forward(const Matrix<T>& x, Context* ctx) const {
  ctx->gate = gate_proj_.Forward(x, &ctx->gate_proj);
  ctx->up = up_proj_.Forward(x, &ctx->up_proj);
  const auto g = ctx->gate.array();
  const Matrix<T> h = (g / (T(1) + (-g).exp()) * ctx->up.array()).matrix();
  return down_proj_.Forward(h, &ctx->down_proj);
}

template <typename T>
Matrix<T> Mlp<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  const Matrix<T> dh = down_proj_.BackwardInput(std::move(dy), &ctx->down_proj);
  const auto g = ctx->gate.array();
  const auto sig = T(1) / (T(1) + (-g).exp());
  // silu(g) = g sig(g); silu'(g) = sig(g) (1 + g (1 - sig(g))).
  Matrix<T> d_up = (dh.array() * g * sig).matrix();
  Matrix<T> d_gate = (dh.array() * ctx->up.array() * sig * (T(1) + g * (T(1) - sig))).matrix();
  ctx->gate = Matrix<T>();
  ctx->up = Matrix<T>();
  Matrix<T> dx = gate_proj_.BackwardInput(std::move(d_gate), &ctx->gate_proj);
  dx += up_proj_.BackwardInput(std::move(d_up), &ctx->up_proj);
  return dx;
}

template <typename T>
void Mlp<T>::BackwardWeight(Context* ctx) {
  gate_proj_.BackwardWeight(&ctx->gate_proj);
  up_proj_.BackwardWeight(&ctx->up_proj);
  down_proj_.BackwardWeight(&ctx->down_proj);
}

template class Mlp<float>;
template class Mlp<double>;

}  // namespace model
