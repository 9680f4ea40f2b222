#include "model/deepseek_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "core/check.h"
#include "core/dtype.h"
#include "core/status_macros.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace model {
namespace {

constexpr int64_t kBlock = 128;  // the reference's block_size

// convert.py's mapping of Hugging Face module names to the reference's.
const std::map<std::string, std::string>& ReferenceModules() {
  static const auto* const kMapping = new std::map<std::string, std::string>{
      {"embed_tokens", "embed"},
      {"input_layernorm", "attn_norm"},
      {"post_attention_layernorm", "ffn_norm"},
      {"q_proj", "wq"},
      {"q_a_proj", "wq_a"},
      {"q_a_layernorm", "q_norm"},
      {"q_b_proj", "wq_b"},
      {"kv_a_proj_with_mqa", "wkv_a"},
      {"kv_a_layernorm", "kv_norm"},
      {"kv_b_proj", "wkv_b"},
      {"o_proj", "wo"},
      {"gate", "gate"},
      {"gate_proj", "w1"},
      {"down_proj", "w2"},
      {"up_proj", "w3"},
      {"norm", "norm"},
      {"lm_head", "head"},
      {"scale", "scale"},
  };
  return *kMapping;
}

// Files of the checkpoint at `path` (see LoadDeepSeekCheckpoint).
absl::StatusOr<std::vector<std::string>> CheckpointFiles(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(path, error)) return std::vector<std::string>{path};
  const fs::path index = fs::path(path) / "model.safetensors.index.json";
  std::set<std::string> files;
  if (fs::exists(index, error)) {
    std::ifstream in(index);
    const nlohmann::json json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!json.is_object() || !json.contains("weight_map") || !json["weight_map"].is_object()) {
      return absl::DataLossError(absl::StrCat(index.string(), ": no weight_map object"));
    }
    for (const auto& [name, file] : json["weight_map"].items()) {
      if (!file.is_string()) {
        return absl::DataLossError(
            absl::StrCat(index.string(), ": weight_map['", name, "'] is not a file name"));
      }
      files.insert((fs::path(path) / file.get<std::string>()).string());
    }
  } else {
    for (const fs::directory_entry& entry : fs::directory_iterator(path, error)) {
      if (entry.path().extension() == ".safetensors") files.insert(entry.path().string());
    }
  }
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(path, ": no .safetensors files"));
  }
  return std::vector<std::string>(files.begin(), files.end());
}

// Which file holds each tensor of a checkpoint.
using TensorFiles = std::map<std::string, SafetensorsReader*>;

absl::StatusOr<RawTensor> ReadTensor(const std::string& path, const TensorFiles& files,
                                     const std::string& name) {
  const auto it = files.find(name);
  if (it == files.end()) return absl::NotFoundError(absl::StrCat(path, ": no tensor '", name, "'"));
  return it->second->Read(name);
}

// Reads one parameter's value from the checkpoint at `path` into a [rows, cols] matrix.
template <typename T>
absl::StatusOr<Matrix<T>> ReadValue(const std::string& path, const TensorFiles& files,
                                    const Param<T>& p) {
  ASSIGN_OR_RETURN(RawTensor tensor, ReadTensor(path, files, p.name));
  const std::string& file = files.at(p.name)->path();
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": tensor '", p.name, "' ", why));
  };
  if (tensor.shape != p.shape()) {
    return bad(absl::StrCat("has shape [", absl::StrJoin(tensor.shape, ", "), "], expected [",
                            absl::StrJoin(p.shape(), ", "), "]"));
  }
  const int64_t rows = p.value.rows();
  const int64_t cols = p.value.cols();
  Matrix<T> value(rows, cols);
  T* out = value.data();
  const char* in = tensor.bytes.data();
  const int64_t n = value.size();
  if (tensor.dtype == "F64") {
    for (int64_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, in + 8 * i, 8);
      out[i] = static_cast<T>(v);
    }
  } else if (tensor.dtype == "F32") {
    for (int64_t i = 0; i < n; ++i) {
      float v;
      std::memcpy(&v, in + 4 * i, 4);
      out[i] = static_cast<T>(v);
    }
  } else if (tensor.dtype == "BF16") {
    for (int64_t i = 0; i < n; ++i) {
      core::BFloat16 v;
      std::memcpy(&v.bits, in + 2 * i, 2);
      out[i] = static_cast<T>(core::ToFloat(v));
    }
  } else if (tensor.dtype == "F8_E4M3" && tensor.shape.size() == 2) {
    if (!absl::EndsWith(p.name, "weight")) return bad("is F8_E4M3 but not a weight");
    const std::string scale_name = absl::StrCat(p.name, "_scale_inv");
    ASSIGN_OR_RETURN(RawTensor scale, ReadTensor(path, files, scale_name));
    const std::vector<int64_t> scale_shape = {(rows + kBlock - 1) / kBlock,
                                              (cols + kBlock - 1) / kBlock};
    if (scale.dtype != "F32" || scale.shape != scale_shape) {
      return bad(absl::StrCat("is F8_E4M3 and its scale '", scale_name, "' is ", scale.dtype, " [",
                              absl::StrJoin(scale.shape, ", "), "], expected F32 [",
                              absl::StrJoin(scale_shape, ", "), "]"));
    }
    std::vector<float> scales(scale.bytes.size() / sizeof(float));
    std::memcpy(scales.data(), scale.bytes.data(), scale.bytes.size());
    value = DequantizeFp8<T>(reinterpret_cast<const uint8_t*>(in), rows, cols, scales.data());
  } else {
    return bad(absl::StrCat("is ", tensor.dtype, ", expected F64, F32, BF16 or a 2-d F8_E4M3"));
  }
  return value;
}

}  // namespace

absl::StatusOr<std::string> ReferenceName(const std::string& checkpoint_name) {
  std::string name = checkpoint_name;
  if (absl::StartsWith(name, "model.")) name = name.substr(std::string("model.").size());
  name = absl::StrReplaceAll(name, {{"self_attn", "attn"}});
  name = absl::StrReplaceAll(name, {{"mlp", "ffn"}});
  name = absl::StrReplaceAll(name, {{"weight_scale_inv", "scale"}});
  name = absl::StrReplaceAll(name, {{"e_score_correction_bias", "bias"}});
  const std::vector<std::string> parts = absl::StrSplit(name, '.');
  const std::string key = parts.size() >= 2 ? parts[parts.size() - 2] : "";
  const auto it = ReferenceModules().find(key);
  if (it == ReferenceModules().end()) {
    return absl::InvalidArgumentError(absl::StrCat("ReferenceName('", checkpoint_name, "'): key '",
                                                   key, "' is not in convert.py's mapping"));
  }
  return absl::StrReplaceAll(name, {{key, it->second}});
}

float Fp8E4m3ToFloat(uint8_t bits) {
  const float sign = (bits & 0x80) != 0 ? -1.0f : 1.0f;
  const int exponent = (bits >> 3) & 0xf;
  const int mantissa = bits & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -9);  // subnormal
  return sign * std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);
}

template <typename T>
Matrix<T> DequantizeFp8(const uint8_t* w, int64_t rows, int64_t cols, const float* scale_inv) {
  DSMOE_CHECK(rows >= 0 && cols >= 0, "DequantizeFp8: ", rows, "x", cols);
  const int64_t scale_cols = (cols + kBlock - 1) / kBlock;
  Matrix<T> y(rows, cols);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const T s = static_cast<T>(scale_inv[(i / kBlock) * scale_cols + j / kBlock]);
      y(i, j) = static_cast<T>(Fp8E4m3ToFloat(w[i * cols + j])) * s;
    }
  }
  return y;
}

template <typename T>
absl::Status LoadDeepSeekCheckpoint(const std::string& path, const std::vector<Param<T>*>& params) {
  ASSIGN_OR_RETURN(const std::vector<std::string> files, CheckpointFiles(path));
  std::vector<std::unique_ptr<SafetensorsReader>> readers;
  TensorFiles owner;
  for (const std::string& file : files) {
    ASSIGN_OR_RETURN(SafetensorsReader reader, SafetensorsReader::Open(file));
    readers.push_back(std::make_unique<SafetensorsReader>(std::move(reader)));
    for (const std::string& name : readers.back()->Names()) {
      const auto [it, inserted] = owner.emplace(name, readers.back().get());
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' is in both ",
                                                       it->second->path(), " and ", file));
      }
    }
  }
  std::vector<Matrix<T>> values;
  values.reserve(params.size());
  for (const Param<T>* p : params) {
    ASSIGN_OR_RETURN(Matrix<T> value, ReadValue(path, owner, *p));
    values.push_back(std::move(value));
  }
  for (size_t i = 0; i < params.size(); ++i) params[i]->value = std::move(values[i]);
  return absl::OkStatus();
}

template Matrix<float> DequantizeFp8<float>(const uint8_t*, int64_t, int64_t, const float*);
template Matrix<double> DequantizeFp8<double>(const uint8_t*, int64_t, int64_t, const float*);
template absl::Status LoadDeepSeekCheckpoint<float>(const std::string&,
                                                    const std::vector<Param<float>*>&);
template absl::Status LoadDeepSeekCheckpoint<double>(const std::string&,
                                                     const std::vector<Param<double>*>&);

}  // namespace model
