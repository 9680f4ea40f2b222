// Reads a whole file into memory. NotFound (naming the path) if it cannot be opened, DataLoss if
// reading fails. (A candidate for core/ when another package needs it.)
#ifndef MODEL_TOKENIZER_READ_FILE_H_
#define MODEL_TOKENIZER_READ_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace tokenizer {

absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace tokenizer

#endif  // MODEL_TOKENIZER_READ_FILE_H_
