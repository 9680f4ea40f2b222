// Model parameters to and from safetensors files, under their DeepSeek-V3-style names.
#ifndef MODEL_WEIGHTS_H_
#define MODEL_WEIGHTS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "model/matrix.h"

namespace model {

// Writes every parameter's value as an F32 tensor of shape Param::shape(), in order.
// Errors as WriteSafetensors. Reads the parameters only.
absl::Status SaveWeights(const std::string& path, const std::vector<Param<float>*>& params,
                         const std::map<std::string, std::string>& metadata = {});

// Sets every parameter's value from the tensor of the same name in the file at `path` (F32, BF16
// widened to f32, F64 rounded, fp8 dequantized: LoadDeepSeekCheckpoint of
// model/deepseek_checkpoint.h, which also takes a checkpoint directory). Tensors no parameter names
// are ignored, so a pipeline stage can load its part of a whole model's file. NOT_FOUND if a
// parameter is missing; INVALID_ARGUMENT if a shape or dtype does not fit; file errors as
// SafetensorsReader. On error no parameter is changed.
absl::Status LoadWeights(const std::string& path, const std::vector<Param<float>*>& params);

}  // namespace model

#endif  // MODEL_WEIGHTS_H_
