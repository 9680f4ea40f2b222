#include "model/weights.h"

#include <utility>

#include "core/status_macros.h"
#include "core/tensor.h"
#include "model/deepseek_checkpoint.h"
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
  return LoadDeepSeekCheckpoint(path, params);
}

}  // namespace model
