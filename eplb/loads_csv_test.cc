#include "eplb/loads_csv.h"

#include <string>

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

TEST(ParseLoadsCsv, EchoesABadFieldEscapedAndCut) {
  const std::string field = "\x1b[31m\tbad" + std::string(100, 'z');
  absl::StatusOr<Matrix<double>> loads = ParseLoadsCsv("1," + field + "\n");
  EXPECT_EQ(loads.status().message(),
            "line 1, field 2: '\\x1b[31m\\tbad" + std::string(31, 'z') + "...' is not a number");
}

TEST(ParseLoadsCsv, RejectsMoreThanTheMostLoads) {
  std::string text;
  for (size_t i = 0; i <= kMaxLoads; ++i) text += "0,";
  text.back() = '\n';
  absl::StatusOr<Matrix<double>> loads = ParseLoadsCsv(text);
  EXPECT_EQ(loads.status().message(), "line 1: more than 16777216 loads in all");
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

TEST(ReadLoadsCsv, DirectoryIsReportedAsOne) {
  absl::StatusOr<Matrix<double>> loads = ReadLoadsCsv("/tmp");
  EXPECT_EQ(loads.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loads.status().message(), "loads file '/tmp' is a directory");
}

TEST(ReadLoadsCsv, EndlessFileIsRefusedAtTheCap) {
  absl::StatusOr<Matrix<double>> loads = ReadLoadsCsv("/dev/zero");
  EXPECT_EQ(loads.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loads.status().message(), "loads file '/dev/zero' holds more than 64 MiB");
}

}  // namespace
}  // namespace eplb
