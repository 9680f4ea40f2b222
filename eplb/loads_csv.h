// Reading expert loads from CSV: one MoE layer per line, comma-separated non-negative numbers, the
// same count on every line. Blank lines are skipped; spaces around numbers are allowed.
#ifndef EPLB_LOADS_CSV_H_
#define EPLB_LOADS_CSV_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "eplb/matrix.h"

namespace eplb {

// Parses `text` into loads [layers, experts]. Returns InvalidArgument naming the line and field
// when a field is not a number, when lines differ in length, or when there is no data. Values are
// not range-checked here (Rebalance does that).
absl::StatusOr<Matrix<double>> ParseLoadsCsv(absl::string_view text);

// Reads and parses the file at `path`. NotFound when it cannot be opened; otherwise as
// ParseLoadsCsv, with the path in the message.
absl::StatusOr<Matrix<double>> ReadLoadsCsv(const std::string& path);

}  // namespace eplb

#endif  // EPLB_LOADS_CSV_H_
