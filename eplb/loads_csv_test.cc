#include "eplb/loads_csv.h"

#include "gtest/gtest.h"

namespace eplb {
namespace {

TEST(ParseLoadsCsv, ParsesLayersAndSkipsBlankLines) {
  absl::StatusOr<Matrix<double>> loads = ParseLoadsCsv("1, 2,3.5\n\n4,5e1,0\n");
  ASSERT_TRUE(loads.ok()) << loads.status();
  EXPECT_EQ(*loads, Matrix<double>(2, 3, std::vector<double>{1, 2, 3.5, 4, 50, 0}));
}

TEST(ParseLoadsCsv, AcceptsWindowsLineEndings) {
  absl::StatusOr<Matrix<double>> loads = ParseLoadsCsv("1,2\r\n3,4\r\n");
  ASSERT_TRUE(loads.ok()) << loads.status();
  EXPECT_EQ(*loads, Matrix<double>(2, 2, std::vector<double>{1, 2, 3, 4}));
}

TEST(ParseLoadsCsv, RejectsNonNumbersNamingTheField) {
  absl::StatusOr<Matrix<double>> loads = ParseLoadsCsv("1,2\n3,x\n");
  EXPECT_EQ(loads.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loads.status().message(), "line 2, field 2: 'x' is not a number");
  EXPECT_FALSE(ParseLoadsCsv("1,,2\n").ok());
}

TEST(ParseLoadsCsv, RejectsRaggedLines) {
  absl::StatusOr<Matrix<double>> loads = ParseLoadsCsv("1,2\n3\n");
  EXPECT_EQ(loads.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loads.status().message(), "line 2 has 1 loads but earlier lines have 2");
}

TEST(ParseLoadsCsv, RejectsEmptyInput) {
  EXPECT_EQ(ParseLoadsCsv("\n \n").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReadLoadsCsv, MissingFileIsNotFound) {
  EXPECT_EQ(ReadLoadsCsv("/nonexistent/loads.csv").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace eplb
