#include "model/linear.h"

#include "core/check.h"

namespace model {

template <typename T>
Linear<T>::Linear(std::string name, int64_t in, int64_t out) : weight_(std::move(name), out, in) {}

template <typename T>
Matrix<T> Linear<T>::Forward(const Matrix<T>& x, Context* ctx) const {
  DSMOE_CHECK(x.cols() == in(), weight_.name, ": input width ", x.cols(), " != ", in());
  ctx->x = x;
  return x * weight_.value.transpose();
}

template <typename T>
Matrix<T> Linear<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  DSMOE_CHECK(dy.rows() == ctx->x.rows() && dy.cols() == out(), weight_.name,
              ": gradient shape does not match the forward pass");
  ctx->dy = std::move(dy);
  return ctx->dy * weight_.value;
}

template <typename T>
void Linear<T>::BackwardWeight(Context* ctx) {
  DSMOE_CHECK(ctx->dy.rows() == ctx->x.rows(), weight_.name,
              ": BackwardWeight before BackwardInput");
  weight_.grad.noalias() += ctx->dy.transpose() * ctx->x;
  ctx->x = Matrix<T>();
  ctx->dy = Matrix<T>();
}

template class Linear<float>;
template class Linear<double>;

}  // namespace model
