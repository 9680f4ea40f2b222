// Test helper: reads golden files from dualpipe/testdata in a test's runfiles.
#ifndef DUALPIPE_INTERNAL_GOLDEN_H_
#define DUALPIPE_INTERNAL_GOLDEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dualpipe::internal {

// Returns the contents of dualpipe/testdata/`name`, or NotFound naming the path. The test must
// list the file in its `data` and run from its runfiles root (Bazel's default).
absl::StatusOr<std::string> ReadGolden(absl::string_view name);

}  // namespace dualpipe::internal

#endif  // DUALPIPE_INTERNAL_GOLDEN_H_
