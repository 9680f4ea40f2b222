#include "eplb/loads_csv.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace eplb {
namespace {

// Fields longer than this are cut in error messages.
constexpr size_t kMaxQuotedField = 40;

// `text` for an error message: quoted, C-escaped (so it stays one printable line) and cut to
// max_bytes bytes with "..." after it.
std::string Quoted(absl::string_view text, size_t max_bytes = kMaxQuotedField) {
  const bool cut = text.size() > max_bytes;
  return absl::StrCat("'", absl::CHexEscape(text.substr(0, max_bytes)), cut ? "...'" : "'");
}

// A path for an error message: quoted and C-escaped, not cut.
std::string QuotedPath(absl::string_view path) { return Quoted(path, path.size()); }

}  // namespace

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
                                                       ": ", Quoted(field), " is not a number"));
      }
      if (values.size() == kMaxLoads) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number, ": more than ", kMaxLoads, " loads in all"));
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
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("loads file ", QuotedPath(path), " is a directory"));
  }
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                             &std::fclose);
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open loads file ", QuotedPath(path)));
  }
  // Reads at most kMaxLoadsFileBytes + 1 bytes, so that a file past the cap (or an endless one,
  // such as /dev/zero) is refused without reading it all.
  std::string contents;
  char buffer[1 << 16];
  while (contents.size() <= kMaxLoadsFileBytes) {
    const size_t read = std::fread(buffer, 1, sizeof(buffer), file.get());
    if (read == 0) break;
    contents.append(buffer, read);
  }
  if (std::ferror(file.get())) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read loads file ", QuotedPath(path)));
  }
  if (contents.size() > kMaxLoadsFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "loads file ", QuotedPath(path), " holds more than ", kMaxLoadsFileBytes >> 20, " MiB"));
  }
  absl::StatusOr<Matrix<double>> loads = ParseLoadsCsv(contents);
  if (!loads.ok()) {
    return absl::Status(loads.status().code(),
                        absl::StrCat(QuotedPath(path), ": ", loads.status().message()));
  }
  return loads;
}

}  // namespace eplb
