#include "model/tokenizer/read_file.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace tokenizer {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return buffer.str();
}

}  // namespace tokenizer
