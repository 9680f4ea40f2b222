// Reading and writing the safetensors format (https://github.com/huggingface/safetensors), which
// Python's safetensors and PyTorch read:
//   [8 bytes: little-endian u64 N][N bytes: JSON header, space-padded to a multiple of 8][data]
// The header maps each tensor name to {"dtype": "F32"|"BF16"|"I32"|"I64", "shape": [...],
// "data_offsets": [begin, end]} (byte offsets into the data), plus an optional "__metadata__"
// object of string values. Data is little-endian, row-major, with no gaps or overlaps.
#ifndef MODEL_SAFETENSORS_H_
#define MODEL_SAFETENSORS_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"

namespace model {

struct SafetensorsFile {
  std::map<std::string, core::Tensor> tensors;  // host tensors
  std::map<std::string, std::string> metadata;
};

// Writes `tensors` (host tensors, written in this order; names must be unique, non-empty and not
// "__metadata__") and `metadata` to `path`, replacing it. INVALID_ARGUMENT for a bad name or a
// device tensor; UNAVAILABLE if the file cannot be written. Does not take ownership.
absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, core::TensorView>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Reads a whole file. NOT_FOUND if it cannot be opened; DATA_LOSS naming the problem if it is not
// well-formed (bad header length or JSON, unknown dtype, offsets that disagree with a shape, leave
// gaps, overlap or run past the end).
absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path);

}  // namespace model

#endif  // MODEL_SAFETENSORS_H_
