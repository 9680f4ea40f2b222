#include "model/embedding.h"

#include "core/check.h"

namespace model {

template <typename T>
Embedding<T>::Embedding(std::string name, int64_t vocab, int64_t width)
    : table_(std::move(name), vocab, width) {}

template <typename T>
Matrix<T> Embedding<T>::Forward(const std::vector<int32_t>& ids, Context* ctx) const {
  Matrix<T> y(static_cast<int64_t>(ids.size()), table_.value.cols());
  for (size_t t = 0; t < ids.size(); ++t) {
    DSMOE_CHECK(ids[t] >= 0 && ids[t] < vocab(), table_.name, ": token id ", ids[t]);
    y.row(t) = table_.value.row(ids[t]);
  }
  ctx->ids = ids;
  return y;
}

template <typename T>
void Embedding<T>::BackwardInput(Matrix<T> dy, Context* ctx) const {
  DSMOE_CHECK(
      dy.rows() == static_cast<int64_t>(ctx->ids.size()) && dy.cols() == table_.value.cols(),
      table_.name, ": gradient shape does not match the forward pass");
  ctx->dy = std::move(dy);
}

template <typename T>
void Embedding<T>::BackwardWeight(Context* ctx) {
  DSMOE_CHECK(ctx->dy.rows() == static_cast<int64_t>(ctx->ids.size()), table_.name,
              ": BackwardWeight before BackwardInput");
  for (size_t t = 0; t < ctx->ids.size(); ++t) table_.grad.row(ctx->ids[t]) += ctx->dy.row(t);
  *ctx = Context();
}

template class Embedding<float>;
template class Embedding<double>;

}  // namespace model
