// Reading expert loads from CSV: one MoE layer per line, comma-separated non-negative numbers, the
// same count on every line. Blank lines are skipped; spaces around numbers are allowed.
#ifndef EPLB_LOADS_CSV_H_
#define EPLB_LOADS_CSV_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "eplb/matrix.h"

namespace eplb {

// The most a loads file may hold: 64 MiB, and 2^24 loads (Rebalance's limit on a placement).
inline constexpr size_t kMaxLoadsFileBytes = size_t{64} << 20;
inline constexpr size_t kMaxLoads = size_t{1} << 24;

// Parses `text` into loads [layers, experts]. Returns InvalidArgument naming the line and field
// when a field is not a number (the field quoted, C-escaped and cut at 40 bytes), when lines
// differ in length, when there are more than kMaxLoads loads, or when there is no data. Values are
// not range-checked here (Rebalance does that).
absl::StatusOr<Matrix<double>> ParseLoadsCsv(absl::string_view text);

// Reads and parses the file at `path`. NotFound when it cannot be opened; InvalidArgument when it
// is a directory or holds more than kMaxLoadsFileBytes (read no further than that, so an endless
// file such as /dev/zero is refused too); otherwise as ParseLoadsCsv, with the path in the
// message.
absl::StatusOr<Matrix<double>> ReadLoadsCsv(const std::string& path);

}  // namespace eplb

#endif  // EPLB_LOADS_CSV_H_
