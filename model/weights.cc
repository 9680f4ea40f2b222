#include "model/weights.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "core/tensor.h"
#include "model/safetensors.h"

namespace model {

absl::Status SaveWeights(const std::string& path, const std::vector<Param<float>*>& params,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, core::TensorView>> tensors;
  tensors.reserve(params.size());
  for (const Param<float>* p : params) {
    tensors.emplace_back(p->name, core::TensorView(const_cast<float*>(p->value.data()),
                                                   core::DType::kF32, core::Shape(p->shape())));
  }
  return WriteSafetensors(path, tensors, metadata);
}

absl::Status LoadWeights(const std::string& path, const std::vector<Param<float>*>& params) {
  ASSIGN_OR_RETURN(SafetensorsFile file, ReadSafetensors(path));
  std::vector<Matrix<float>> values;
  values.reserve(params.size());
  for (const Param<float>* p : params) {
    const auto it = file.tensors.find(p->name);
    if (it == file.tensors.end()) {
      return absl::NotFoundError(absl::StrCat(path, ": no tensor '", p->name, "'"));
    }
    const core::Tensor& tensor = it->second;
    if (tensor.shape().dims() != p->shape()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", p->name, "' has shape ",
                                                     tensor.shape().ToString(), ", expected [",
                                                     absl::StrJoin(p->shape(), ", "), "]"));
    }
    Matrix<float> value(p->value.rows(), p->value.cols());
    if (tensor.dtype() == core::DType::kF32) {
      std::copy_n(tensor.data<float>(), value.size(), value.data());
    } else if (tensor.dtype() == core::DType::kBF16) {
      const core::BFloat16* data = tensor.data<core::BFloat16>();
      for (int64_t i = 0; i < value.size(); ++i) value.data()[i] = core::ToFloat(data[i]);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", p->name, "' is ",
                                                     core::Name(tensor.dtype()),
                                                     ", expected f32 or bf16"));
    }
    values.push_back(std::move(value));
  }
  for (size_t i = 0; i < params.size(); ++i) params[i]->value = std::move(values[i]);
  return absl::OkStatus();
}

}  // namespace model
