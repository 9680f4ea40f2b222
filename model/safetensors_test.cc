#include "model/safetensors.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace model {
namespace {

std::string TempPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// The file Python's safetensors.numpy.save_file({"a": np.array([1, 2], np.float32)}) describes:
// a 56-byte header (54 bytes of JSON and 2 spaces of padding), then 8 bytes of data.
std::string GoldenFile() {
  const std::string json = R"({"a":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}})";
  std::string bytes("\x38\0\0\0\0\0\0\0", 8);
  bytes += json + "  ";
  const float data[2] = {1.0f, 2.0f};
  bytes.append(reinterpret_cast<const char*>(data), sizeof(data));
  return bytes;
}

TEST(SafetensorsTest, WritesTheGoldenBytes) {
  core::Tensor a = core::Tensor::FromVector({2}, {1.0f, 2.0f});
  const std::string path = TempPath("golden.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"a", a.view()}}).ok());
  EXPECT_EQ(ReadBytes(path), GoldenFile());
}

TEST(SafetensorsTest, ReadsTheGoldenBytes) {
  const std::string path = TempPath("golden_in.safetensors");
  WriteBytes(path, GoldenFile());
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tensors.count("a"), 1u);
  const core::Tensor& a = file->tensors.at("a");
  EXPECT_EQ(a.shape(), core::Shape({2}));
  EXPECT_EQ(a.at<float>({0}), 1.0f);
  EXPECT_EQ(a.at<float>({1}), 2.0f);
}

TEST(SafetensorsTest, RoundTripsDTypesShapesAndMetadata) {
  core::Tensor f = core::Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6});
  core::Tensor i = core::Tensor::Zeros({4}, core::DType::kI64);
  i.data<int64_t>()[3] = -7;
  core::Tensor b = core::Tensor::Zeros({1}, core::DType::kBF16);
  b.data<core::BFloat16>()[0] = core::ToBFloat16(1.5f);
  core::Tensor empty = core::Tensor::Zeros({0, 5}, core::DType::kI32);
  const std::string path = TempPath("round_trip.safetensors");
  ASSERT_TRUE(WriteSafetensors(
                  path,
                  {{"z.f", f.view()}, {"a.i", i.view()}, {"m.b", b.view()}, {"e", empty.view()}},
                  {{"format", "pt"}})
                  .ok());
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata.at("format"), "pt");
  EXPECT_EQ(file->tensors.at("z.f").at<float>({1, 2}), 6.0f);
  EXPECT_EQ(file->tensors.at("a.i").at<int64_t>({3}), -7);
  EXPECT_EQ(core::ToFloat(file->tensors.at("m.b").at<core::BFloat16>({0})), 1.5f);
  EXPECT_EQ(file->tensors.at("e").shape(), core::Shape({0, 5}));
}

TEST(SafetensorsTest, RejectsBadNames) {
  core::Tensor a = core::Tensor::FromVector({1}, {1.0f});
  const std::string path = TempPath("bad_names.safetensors");
  EXPECT_EQ(WriteSafetensors(path, {{"a", a.view()}, {"a", a.view()}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteSafetensors(path, {{"__metadata__", a.view()}}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadSafetensors(TempPath("none.safetensors")).status().code(),
            absl::StatusCode::kNotFound);
}

// Each case corrupts the golden file; the error must be DATA_LOSS and say why.
TEST(SafetensorsTest, RejectsMalformedFiles) {
  const std::string golden = GoldenFile();
  const auto with_header = [&](const std::string& json) {
    std::string bytes(8, '\0');
    bytes[0] = static_cast<char>(json.size());
    return bytes + json + golden.substr(64);
  };
  const struct {
    std::string bytes;
    const char* why;
  } kCases[] = {
      {golden.substr(0, 5), "shorter"},
      {std::string("\xff\0\0\0\0\0\0\0", 8) + golden.substr(8), "exceeds"},
      {with_header("{\"a\":"), "not a JSON object"},
      {with_header(R"({"a":{"data_offsets":[0,8],"dtype":"F64","shape":[1]}})"), "unsupported"},
      {with_header(R"({"a":{"data_offsets":[0,8],"dtype":"X99","shape":[2]}})"), "unsupported"},
      {with_header(R"({"a":{"data_offsets":[0,8],"dtype":"F32","shape":[3]}})"), "disagree"},
      {with_header(R"({"a":{"data_offsets":[0,16],"dtype":"F32","shape":[4]}})"), "outside"},
      {with_header(R"({"a":{"data_offsets":[0,4],"dtype":"F32","shape":[1]}})"), "cover 4 of 8"},
      {with_header(R"({"a":{"data_offsets":[4,8],"dtype":"F32","shape":[1]}})"), "gap"},
      {with_header(R"({"a":{"dtype":"F32","shape":[2]}})"), "needs"},
  };
  const std::string path = TempPath("malformed.safetensors");
  for (const auto& c : kCases) {
    WriteBytes(path, c.bytes);
    const absl::Status status = ReadSafetensors(path).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << c.why;
    EXPECT_NE(std::string(status.message()).find(c.why), std::string::npos) << status;
    // The reader checks the header the same way, but takes every dtype of the format (F64).
    const absl::Status raw = SafetensorsReader::Open(path).status();
    if (std::string(c.why) == "unsupported" && c.bytes.find("F64") != std::string::npos) {
      EXPECT_TRUE(raw.ok()) << raw;
    } else {
      EXPECT_EQ(raw.code(), absl::StatusCode::kDataLoss) << c.why;
      EXPECT_NE(std::string(raw.message()).find(c.why), std::string::npos) << raw;
    }
  }
}

TEST(SafetensorsTest, RawTensorsRoundTripAndReadOneByOne) {
  const std::string path = TempPath("raw.safetensors");
  const RawTensor f8{"F8_E4M3", {2, 3}, std::string("\x38\x3c\x7e\x01\x00\xb8", 6)};
  const RawTensor f64{"F64", {1}, std::string("\0\0\0\0\0\0\xf0\x3f", 8)};  // 1.0
  ASSERT_TRUE(WriteSafetensorsRaw({{"w", f8}, {"x", f64}}, path, {{"k", "v"}}).ok());
  absl::StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->Names(), (std::vector<std::string>{"w", "x"}));
  EXPECT_EQ(reader->metadata().at("k"), "v");
  absl::StatusOr<RawTensor> x = reader->Read("x");
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_EQ(x->dtype, "F64");
  EXPECT_EQ(x->bytes, f64.bytes);
  absl::StatusOr<RawTensor> w = reader->Read("w");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->bytes, f8.bytes);
  EXPECT_EQ(reader->Read("y").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SafetensorsElementSize("F8_E4M3"), 1);
  EXPECT_EQ(SafetensorsElementSize("F64"), 8);
  EXPECT_EQ(SafetensorsElementSize("Q4"), 0);
  EXPECT_EQ(WriteSafetensorsRaw({{"w", {"F32", {2}, "abc"}}}, path).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace model
