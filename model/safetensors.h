// Reading and writing the safetensors format (https://github.com/huggingface/safetensors), which
// Python's safetensors and PyTorch read:
//   [8 bytes: little-endian u64 N][N bytes: JSON header, space-padded to a multiple of 8][data]
// The header maps each tensor name to {"dtype": "F32"|"BF16"|"F8_E4M3"|..., "shape": [...],
// "data_offsets": [begin, end]} (byte offsets into the data), plus an optional "__metadata__"
// object of string values. Data is little-endian, row-major, with no gaps or overlaps.
//
// Two ways in: ReadSafetensors reads a whole file into core::Tensors (the dtypes core has: F32,
// BF16, I32, I64); SafetensorsReader reads the header and then single tensors of any safetensors
// dtype as raw bytes (for checkpoint shards, of which a stage needs only some tensors, and for
// dtypes core has not, such as DeepSeek's F8_E4M3 weights).
#ifndef MODEL_SAFETENSORS_H_
#define MODEL_SAFETENSORS_H_

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
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

// A tensor of any safetensors dtype as its raw little-endian bytes.
struct RawTensor {
  std::string dtype;  // as in the header: "F64", "F32", "F16", "BF16", "F8_E4M3", "I64", ...
  std::vector<int64_t> shape;
  std::string bytes;  // num_elements * element size bytes
};

// Bytes per element of a safetensors dtype name ("F8_E4M3" -> 1, "F64" -> 8); 0 if unknown.
int64_t SafetensorsElementSize(const std::string& dtype);

// Writes raw tensors (names unique, non-empty, not "__metadata__"; dtype known; bytes matching
// the shape) and `metadata` to `path`, replacing it. INVALID_ARGUMENT for a bad tensor,
// UNAVAILABLE if the file cannot be written.
absl::Status WriteSafetensorsRaw(const std::vector<std::pair<std::string, RawTensor>>& tensors,
                                 const std::string& path,
                                 const std::map<std::string, std::string>& metadata = {});

// A safetensors file whose header has been read and checked; tensors are read on demand. Not
// thread-safe (one file position); the file stays open while the reader lives.
class SafetensorsReader {
 public:
  // NOT_FOUND if the file cannot be opened; DATA_LOSS naming the problem if its header is not
  // well-formed (as ReadSafetensors, but every dtype of the format is accepted).
  static absl::StatusOr<SafetensorsReader> Open(const std::string& path);

  const std::string& path() const { return path_; }
  // Every tensor's name, in name order.
  std::vector<std::string> Names() const;
  bool Has(const std::string& name) const { return entries_.count(name) > 0; }
  // The dtype and shape of tensor `name` (bytes left empty); NOT_FOUND if there is none.
  absl::StatusOr<RawTensor> Describe(const std::string& name) const;
  // Tensor `name` with its bytes; NOT_FOUND if there is none, DATA_LOSS if the file is short.
  absl::StatusOr<RawTensor> Read(const std::string& name);
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Location {
    std::string dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0;  // absolute file offsets
    uint64_t end = 0;
  };
  std::string path_;
  std::unique_ptr<std::ifstream> file_;
  std::map<std::string, Location> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace model

#endif  // MODEL_SAFETENSORS_H_
