#include "model/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "nlohmann/json.hpp"

namespace model {
namespace {

constexpr const char* kMetadataKey = "__metadata__";

const char* SafetensorsDType(core::DType dtype) {
  switch (dtype) {
    case core::DType::kF32:
      return "F32";
    case core::DType::kBF16:
      return "BF16";
    case core::DType::kI32:
      return "I32";
    case core::DType::kI64:
      return "I64";
    case core::DType::kU8:
      return "U8";
  }
  return "?";
}

absl::StatusOr<core::DType> ParseDType(const std::string& name) {
  for (core::DType dtype : {core::DType::kF32, core::DType::kBF16, core::DType::kI32,
                            core::DType::kI64, core::DType::kU8}) {
    if (name == SafetensorsDType(dtype)) return dtype;
  }
  return absl::DataLossError(absl::StrCat("unsupported dtype '", name, "'"));
}

struct Entry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

// One tensor to write: its header fields and its bytes (not owned).
struct Blob {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const char* data;
  uint64_t size;
};

// Parses and checks the header of a file whose data section has data_size bytes.
absl::StatusOr<std::vector<Entry>> ParseHeader(const std::string& text, uint64_t data_size,
                                               std::map<std::string, std::string>* metadata) {
  const nlohmann::json header = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return absl::DataLossError("the header is not a JSON object");
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      if (!value.is_object()) return absl::DataLossError("__metadata__ is not an object");
      for (const auto& [key, item] : value.items()) {
        if (!item.is_string()) return absl::DataLossError("__metadata__ values must be strings");
        (*metadata)[key] = item.get<std::string>();
      }
      continue;
    }
    const auto bad = [&](const std::string& why) {
      return absl::DataLossError(absl::StrCat("tensor '", name, "': ", why));
    };
    if (!value.is_object() || !value.contains("dtype") || !value["dtype"].is_string() ||
        !value.contains("shape") || !value["shape"].is_array() || !value.contains("data_offsets") ||
        !value["data_offsets"].is_array() || value["data_offsets"].size() != 2) {
      return bad("needs dtype, shape and two data_offsets");
    }
    Entry entry{name, value["dtype"].get<std::string>(), {}, 0, 0};
    const int64_t element_size = SafetensorsElementSize(entry.dtype);
    if (element_size == 0) return bad(absl::StrCat("unsupported dtype '", entry.dtype, "'"));
    uint64_t elements = 1;
    for (const auto& dim : value["shape"]) {
      if (!dim.is_number_unsigned()) return bad("shape entries must be non-negative integers");
      entry.shape.push_back(dim.get<int64_t>());
      elements *= dim.get<uint64_t>();
    }
    for (const auto& offset : value["data_offsets"]) {
      if (!offset.is_number_unsigned()) return bad("data_offsets must be non-negative integers");
    }
    entry.begin = value["data_offsets"][0].get<uint64_t>();
    entry.end = value["data_offsets"][1].get<uint64_t>();
    if (entry.begin > entry.end || entry.end > data_size) {
      return bad(absl::StrCat("data_offsets [", entry.begin, ", ", entry.end,
                              ") outside the data of ", data_size, " bytes"));
    }
    if (entry.end - entry.begin != elements * static_cast<uint64_t>(element_size)) {
      return bad("data_offsets disagree with the shape and dtype");
    }
    entries.push_back(std::move(entry));
  }
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return std::make_pair(a->begin, a->end) < std::make_pair(b->begin, b->end);
  });
  uint64_t covered = 0;
  for (const Entry* e : by_offset) {
    if (e->begin != covered) {
      return absl::DataLossError(absl::StrCat("tensor '", e->name, "' starts at byte ", e->begin,
                                              ", expected ", covered, " (gap or overlap)"));
    }
    covered = e->end;
  }
  if (covered != data_size) {
    return absl::DataLossError(
        absl::StrCat("tensors cover ", covered, " of ", data_size, " data bytes"));
  }
  return entries;
}

absl::Status WriteBlobs(const std::string& path, const std::vector<Blob>& blobs,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const Blob& blob : blobs) {
    if (blob.name.empty() || blob.name == kMetadataKey || header.contains(blob.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("WriteSafetensors: bad or repeated tensor name '", blob.name, "'"));
    }
    header[blob.name] = {{"dtype", blob.dtype},
                         {"shape", blob.shape},
                         {"data_offsets", {offset, offset + blob.size}}};
    offset += blob.size;
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return absl::UnavailableError(absl::StrCat("cannot write '", path, "'"));
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  file.write(reinterpret_cast<const char*>(length), 8);
  file.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const Blob& blob : blobs) file.write(blob.data, static_cast<std::streamsize>(blob.size));
  file.close();
  if (!file) return absl::UnavailableError(absl::StrCat("error writing '", path, "'"));
  return absl::OkStatus();
}

uint64_t LittleEndian64(const char* bytes) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  return value;
}

}  // namespace

int64_t SafetensorsElementSize(const std::string& dtype) {
  static const auto* const kSizes = new std::map<std::string, int64_t>{
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  const auto it = kSizes->find(dtype);
  return it == kSizes->end() ? 0 : it->second;
}

absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, core::TensorView>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<Blob> blobs;
  for (const auto& [name, tensor] : tensors) {
    if (tensor.device() != core::Device::kHost) {
      return absl::InvalidArgumentError(
          absl::StrCat("WriteSafetensors: tensor '", name, "' is not in host memory"));
    }
    blobs.push_back({name, SafetensorsDType(tensor.dtype()), tensor.shape().dims(),
                     static_cast<const char*>(tensor.raw_data()), tensor.num_bytes()});
  }
  return WriteBlobs(path, blobs, metadata);
}

absl::Status WriteSafetensorsRaw(const std::vector<std::pair<std::string, RawTensor>>& tensors,
                                 const std::string& path,
                                 const std::map<std::string, std::string>& metadata) {
  std::vector<Blob> blobs;
  for (const auto& [name, tensor] : tensors) {
    int64_t elements = 1;
    for (int64_t d : tensor.shape) elements *= d;
    const int64_t element_size = SafetensorsElementSize(tensor.dtype);
    if (element_size == 0 || static_cast<int64_t>(tensor.bytes.size()) != elements * element_size) {
      return absl::InvalidArgumentError(absl::StrCat("WriteSafetensorsRaw: tensor '", name,
                                                     "' of dtype '", tensor.dtype, "' has ",
                                                     tensor.bytes.size(), " bytes"));
    }
    blobs.push_back({name, tensor.dtype, tensor.shape, tensor.bytes.data(), tensor.bytes.size()});
  }
  return WriteBlobs(path, blobs, metadata);
}

absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const auto fail = [&](const absl::Status& status) {
    return absl::DataLossError(absl::StrCat(path, ": ", status.message()));
  };
  if (bytes.size() < 8) return fail(absl::DataLossError("shorter than the 8-byte header length"));
  const uint64_t header_size = LittleEndian64(bytes.data());
  if (header_size > bytes.size() - 8) {
    return fail(absl::DataLossError(
        absl::StrCat("header length ", header_size, " exceeds the file size ", bytes.size())));
  }
  SafetensorsFile result;
  const uint64_t data_start = 8 + header_size;
  absl::StatusOr<std::vector<Entry>> entries =
      ParseHeader(bytes.substr(8, header_size), bytes.size() - data_start, &result.metadata);
  if (!entries.ok()) return fail(entries.status());
  for (const Entry& entry : *entries) {
    absl::StatusOr<core::DType> dtype = ParseDType(entry.dtype);
    if (!dtype.ok()) {
      return fail(absl::DataLossError(
          absl::StrCat("tensor '", entry.name, "': ", dtype.status().message())));
    }
    ASSIGN_OR_RETURN(core::Tensor tensor, core::Tensor::Empty(core::Shape(entry.shape), *dtype));
    if (entry.end > entry.begin) {
      std::memcpy(tensor.view().raw_data(), bytes.data() + data_start + entry.begin,
                  entry.end - entry.begin);
    }
    result.tensors.emplace(entry.name, std::move(tensor));
  }
  return result;
}

absl::StatusOr<SafetensorsReader> SafetensorsReader::Open(const std::string& path) {
  SafetensorsReader reader;
  reader.path_ = path;
  reader.file_ = std::make_unique<std::ifstream>(path, std::ios::binary);
  std::ifstream& file = *reader.file_;
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  const auto fail = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat(path, ": ", why));
  };
  file.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(file.tellg());
  file.seekg(0);
  char length[8];
  if (file_size < 8 || !file.read(length, 8)) {
    return fail("shorter than the 8-byte header length");
  }
  const uint64_t header_size = LittleEndian64(length);
  if (header_size > file_size - 8) {
    return fail(absl::StrCat("header length ", header_size, " exceeds the file size ", file_size));
  }
  std::string header(header_size, '\0');
  if (!file.read(header.data(), static_cast<std::streamsize>(header_size))) {
    return fail("cannot read the header");
  }
  const uint64_t data_start = 8 + header_size;
  absl::StatusOr<std::vector<Entry>> entries =
      ParseHeader(header, file_size - data_start, &reader.metadata_);
  if (!entries.ok()) return fail(std::string(entries.status().message()));
  for (Entry& entry : *entries) {
    reader.entries_[entry.name] = {std::move(entry.dtype), std::move(entry.shape),
                                   data_start + entry.begin, data_start + entry.end};
  }
  return reader;
}

std::vector<std::string> SafetensorsReader::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, location] : entries_) names.push_back(name);
  return names;
}

absl::StatusOr<RawTensor> SafetensorsReader::Describe(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", name, "'"));
  }
  return RawTensor{it->second.dtype, it->second.shape, ""};
}

absl::StatusOr<RawTensor> SafetensorsReader::Read(const std::string& name) {
  ASSIGN_OR_RETURN(RawTensor tensor, Describe(name));
  const Location& location = entries_.at(name);
  tensor.bytes.resize(location.end - location.begin);
  file_->clear();
  file_->seekg(static_cast<std::streamoff>(location.begin));
  if (!file_->read(tensor.bytes.data(), static_cast<std::streamsize>(tensor.bytes.size()))) {
    return absl::DataLossError(absl::StrCat(path_, ": cannot read tensor '", name, "'"));
  }
  return tensor;
}

}  // namespace model
