#include "model/rms_norm.h"

#include "core/check.h"

namespace model {

template <typename T>
RmsNorm<T>::RmsNorm(std::string name, int64_t width, double eps)
    : scale_(std::move(name), 1, width, ParamKind::kNormScale), eps_(static_cast<T>(eps)) {
  DSMOE_CHECK(width > 0 && eps > 0, scale_.name, ": width ", width, ", eps ", eps);
}

template <typename T>
Matrix<T> RmsNorm<T>::Forward(const Matrix<T>& x, Context* ctx) const {
  DSMOE_CHECK(x.cols() == scale_.value.cols(), scale_.name, ": input width ", x.cols());
  ctx->x = x;
  ctx->inv_rms =
      ((x.array().square().rowwise().sum() / static_cast<T>(x.cols())) + eps_).rsqrt().matrix();
  Matrix<T> y = x.array().colwise() * ctx->inv_rms.col(0).array();
  y.array().rowwise() *= scale_.value.row(0).array();
  return y;
}

template <typename T>
Matrix<T> RmsNorm<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  DSMOE_CHECK(dy.rows() == ctx->x.rows() && dy.cols() == ctx->x.cols(), scale_.name,
              ": gradient shape does not match the forward pass");
  // With u = dy * g: dx = r u - x r^3 mean(u * x).
  Matrix<T> u = dy.array().rowwise() * scale_.value.row(0).array();
  const auto r = ctx->inv_rms.col(0).array();
  const auto mean_ux = (u.array() * ctx->x.array()).rowwise().sum() / static_cast<T>(dy.cols());
  Matrix<T> dx = (u.array().colwise() * r) - (ctx->x.array().colwise() * (r.cube() * mean_ux));
  ctx->dy = std::move(dy);
  return dx;
}

template <typename T>
void RmsNorm<T>::BackwardWeight(Context* ctx) {
  DSMOE_CHECK(ctx->dy.rows() == ctx->x.rows(), scale_.name,
              ": BackwardWeight before BackwardInput");
  scale_.grad.row(0) += ((ctx->dy.array() * ctx->x.array()).colwise() * ctx->inv_rms.col(0).array())
                            .colwise()
                            .sum()
                            .matrix();
  *ctx = Context();
}

template class RmsNorm<float>;
template class RmsNorm<double>;

}  // namespace model
