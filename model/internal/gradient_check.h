// Test helpers: central-difference gradient checks in double, and exact comparison of gradients.
#ifndef MODEL_INTERNAL_GRADIENT_CHECK_H_
#define MODEL_INTERNAL_GRADIENT_CHECK_H_

#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/matrix.h"

namespace model::test_util {

// Perturbs each element of *values by +-step, evaluates loss() at both points, and EXPECTs the
// central difference to match analytic (same shape as *values) within
// tolerance * max(1, |analytic|). Restores *values. `what` names the checked tensor in failures.
void ExpectGradientMatches(const std::function<double()>& loss, Matrix<double>* values,
                           const Matrix<double>& analytic, const std::string& what,
                           double tolerance = 1e-6, double step = 1e-5);

// ExpectGradientMatches for every trainable parameter's value against its grad.
void ExpectParamGradientsMatch(const std::function<double()>& loss,
                               const std::vector<Param<double>*>& params, double tolerance = 1e-6);

// The sum of a (*) b: a scalar loss whose gradient with respect to a is b.
inline double Dot(const Matrix<double>& a, const Matrix<double>& b) {
  return a.cwiseProduct(b).sum();
}

// Copies every parameter's grad (empty for buffers), in order.
std::vector<Matrix<double>> Grads(const std::vector<Param<double>*>& params);

// How the layer helpers below drive a layer: forward(input, ctx) returns the output;
// backward_input(dy, ctx) returns the input gradient (an empty matrix if the input has none).
template <typename Layer, typename Input>
struct LayerCalls {
  std::function<Matrix<double>(const Input&, typename Layer::Context*)> forward;
  std::function<Matrix<double>(Matrix<double>, typename Layer::Context*)> backward_input;
};

// Runs Forward, BackwardInput and BackwardWeight on a zeroed layer with the upstream gradient r
// (random, seeded), then checks the input gradient (if Input is a matrix) and every parameter
// gradient against central differences of the loss sum(forward(input) * r).
template <typename Layer, typename Input>
void ExpectLayerGradientsMatch(Layer* layer, const LayerCalls<Layer, Input>& calls, Input input,
                               double tolerance = 1e-6) {
  ZeroGrads(layer->Params());
  typename Layer::Context ctx;
  const Matrix<double> y = calls.forward(input, &ctx);
  const Matrix<double> r = RandomMatrix<double>(y.rows(), y.cols(), 77);
  const Matrix<double> dx = calls.backward_input(r, &ctx);
  layer->BackwardWeight(&ctx);
  const auto loss = [&] {
    typename Layer::Context c;
    return Dot(calls.forward(input, &c), r);
  };
  if constexpr (std::is_same_v<Input, Matrix<double>>) {
    ExpectGradientMatches(loss, &input, dx, "input", tolerance);
  }
  ExpectParamGradientsMatch(loss, layer->Params(), tolerance);
}

// Checks that deferring BackwardWeight changes nothing: runs two micro-batches through `layer` as
// F0 I0 W0 F1 I1 W1 and again as F0 F1 I0 I1 W0 W1 (W in FIFO order), with the same upstream
// gradients, and EXPECTs bit-identical input gradients and parameter gradients.
template <typename Layer, typename Input>
void ExpectDeferredBackwardWeightExact(Layer* layer, const LayerCalls<Layer, Input>& calls,
                                       const Input& input0, const Input& input1) {
  const std::vector<Param<double>*> params = layer->Params();
  const Input* inputs[2] = {&input0, &input1};
  std::vector<Matrix<double>> dy(2), dx_full(2), dx_split(2);
  ZeroGrads(params);
  for (int mb = 0; mb < 2; ++mb) {
    typename Layer::Context ctx;
    const Matrix<double> y = calls.forward(*inputs[mb], &ctx);
    dy[mb] = RandomMatrix<double>(y.rows(), y.cols(), 1000 + mb);
    dx_full[mb] = calls.backward_input(dy[mb], &ctx);
    layer->BackwardWeight(&ctx);
  }
  const std::vector<Matrix<double>> full = Grads(params);
  ZeroGrads(params);
  typename Layer::Context ctx[2];
  for (int mb = 0; mb < 2; ++mb) calls.forward(*inputs[mb], &ctx[mb]);
  for (int mb = 0; mb < 2; ++mb) dx_split[mb] = calls.backward_input(dy[mb], &ctx[mb]);
  for (int mb = 0; mb < 2; ++mb) layer->BackwardWeight(&ctx[mb]);
  for (int mb = 0; mb < 2; ++mb) EXPECT_TRUE(dx_split[mb] == dx_full[mb]) << "micro-batch " << mb;
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(params[i]->grad == full[i]) << params[i]->name;
  }
}

}  // namespace model::test_util

#endif  // MODEL_INTERNAL_GRADIENT_CHECK_H_
