#include "dualpipe/internal/golden.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dualpipe::internal {

absl::StatusOr<std::string> ReadGolden(absl::string_view name) {
  const std::string path = absl::StrCat("dualpipe/testdata/", name);
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open golden file ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

}  // namespace dualpipe::internal
