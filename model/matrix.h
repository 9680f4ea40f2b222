// Dense row-major matrices for the CPU layers, and Param, a named weight with its gradient.
//
// Activations are Matrix<T> of shape [tokens, width]. Layers are templated on the scalar T and
// instantiated for float (training and serving) and double (finite-difference gradient checks).
// GEMMs go through Eigen, which forwards them to OpenBLAS (EIGEN_USE_BLAS, multithreaded).
#ifndef MODEL_MATRIX_H_
#define MODEL_MATRIX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "Eigen/Core"

namespace model {

template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// What a parameter is; it fixes its stored shape, whether it trains, and its initialisation.
enum class ParamKind {
  kMatrix,     // a weight matrix {rows, cols}: trainable, initialised from N(0, init_std^2)
  kNormScale,  // a norm's scale {cols} (rows == 1): trainable, initialised to ones
  kBuffer,     // a non-trainable vector {cols} (rows == 1), e.g. the gate's selection bias: zeros
};

// A weight (or a non-trainable buffer) and its gradient.
template <typename T>
struct Param {
  // value (and grad, for trainable kinds) start zero-filled; see InitParams in model/init.h.
  Param(std::string name, int64_t rows, int64_t cols, ParamKind kind = ParamKind::kMatrix)
      : name(std::move(name)),
        kind(kind),
        value(Matrix<T>::Zero(rows, cols)),
        grad(kind == ParamKind::kBuffer ? Matrix<T>() : Matrix<T>::Zero(rows, cols)) {}

  bool trainable() const { return kind != ParamKind::kBuffer; }
  // How the tensor is stored in a weights file: {rows, cols} for kMatrix, {cols} otherwise.
  std::vector<int64_t> shape() const {
    if (kind == ParamKind::kMatrix) return {value.rows(), value.cols()};
    return {value.cols()};
  }

  std::string name;  // e.g. "model.layers.0.self_attn.q_proj.weight"
  ParamKind kind;
  Matrix<T> value;
  Matrix<T> grad;  // accumulated by BackwardWeight; empty for kBuffer
};

// Zeroes the gradients of every trainable parameter.
template <typename T>
void ZeroGrads(const std::vector<Param<T>*>& params) {
  for (Param<T>* p : params) {
    if (p->trainable()) p->grad.setZero();
  }
}

}  // namespace model

#endif  // MODEL_MATRIX_H_
