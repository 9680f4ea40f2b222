#include "eplb/loads_csv.h"

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace eplb {

absl::StatusOr<Matrix<double>> ParseLoadsCsv(absl::string_view text) {
  std::vector<double> values;
  int rows = 0;
  int cols = 0;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    int fields = 0;
    for (absl::string_view field : absl::StrSplit(line, ',')) {
      ++fields;
      field = absl::StripAsciiWhitespace(field);
      double value = 0.0;
      if (!absl::SimpleAtod(field, &value)) {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ", field ", fields,
                                                       ": '", field, "' is not a number"));
      }
      values.push_back(value);
    }
    if (rows > 0 && fields != cols) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, " has ", fields,
                                                     " loads but earlier lines have ", cols));
    }
    cols = fields;
    ++rows;
  }
  if (rows == 0) return absl::InvalidArgumentError("no loads: the CSV has no data lines");
  return Matrix<double>(rows, cols, std::move(values));
}

absl::StatusOr<Matrix<double>> ReadLoadsCsv(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open loads file '", path, "'"));
  std::stringstream contents;
  contents << file.rdbuf();
  absl::StatusOr<Matrix<double>> loads = ParseLoadsCsv(contents.str());
  if (!loads.ok()) {
    return absl::Status(loads.status().code(), absl::StrCat(path, ": ", loads.status().message()));
  }
  return loads;
}

}  // namespace eplb
