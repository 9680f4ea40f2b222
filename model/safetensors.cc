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
  core::DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
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
    Entry entry{name, core::DType::kF32, {}, 0, 0};
    absl::StatusOr<core::DType> dtype = ParseDType(value["dtype"].get<std::string>());
    if (!dtype.ok()) return bad(std::string(dtype.status().message()));
    entry.dtype = *dtype;
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
    if (entry.end - entry.begin != elements * core::SizeOf(entry.dtype)) {
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

}  // namespace

absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, core::TensorView>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == kMetadataKey || header.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("WriteSafetensors: bad or repeated tensor name '", name, "'"));
    }
    if (tensor.device() != core::Device::kHost) {
      return absl::InvalidArgumentError(
          absl::StrCat("WriteSafetensors: tensor '", name, "' is not in host memory"));
    }
    header[name] = {{"dtype", SafetensorsDType(tensor.dtype())},
                    {"shape", tensor.shape().dims()},
                    {"data_offsets", {offset, offset + tensor.num_bytes()}}};
    offset += tensor.num_bytes();
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return absl::UnavailableError(absl::StrCat("cannot write '", path, "'"));
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  file.write(reinterpret_cast<const char*>(length), 8);
  file.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& [name, tensor] : tensors) {
    file.write(static_cast<const char*>(tensor.raw_data()),
               static_cast<std::streamsize>(tensor.num_bytes()));
  }
  file.close();
  if (!file) return absl::UnavailableError(absl::StrCat("error writing '", path, "'"));
  return absl::OkStatus();
}

absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const auto fail = [&](const absl::Status& status) {
    return absl::DataLossError(absl::StrCat(path, ": ", status.message()));
  };
  if (bytes.size() < 8) return fail(absl::DataLossError("shorter than the 8-byte header length"));
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) {
    header_size |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
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
    ASSIGN_OR_RETURN(core::Tensor tensor,
                     core::Tensor::Empty(core::Shape(entry.shape), entry.dtype));
    if (entry.end > entry.begin) {
      std::memcpy(tensor.view().raw_data(), bytes.data() + data_start + entry.begin,
                  entry.end - entry.begin);
    }
    result.tensors.emplace(entry.name, std::move(tensor));
  }
  return result;
}

}  // namespace model
