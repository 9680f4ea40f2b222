#include "serving/model_dir.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/tensor.h"
#include "google/protobuf/text_format.h"
#include "model/config.h"
#include "model/deepseek_checkpoint.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace serving {
namespace fs = std::filesystem;
namespace {

absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// The newest "step-N" directory under `dir` holding model.textproto, or "".
std::string NewestStep(const fs::path& dir) {
  std::error_code error;
  std::string best;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) != 0 || !fs::exists(entry.path() / "model.textproto")) continue;
    if (best.empty() || name > fs::path(best).filename().string()) best = entry.path().string();
  }
  return best;
}

}  // namespace

absl::StatusOr<std::string> ResolveModelDir(const std::string& path) {
  const fs::path p(path);
  if (fs::exists(p / "model.textproto")) return p.string();
  for (const fs::path& dir : {p, p / "checkpoints"}) {
    const std::string step = NewestStep(dir);
    if (!step.empty()) return step;
  }
  return absl::NotFoundError(absl::StrCat(
      path, " holds no model.textproto (nor checkpoints/step-N/ with one): not a checkpoint"));
}

absl::StatusOr<LoadedModel> LoadModelDir(const std::string& path) {
  LoadedModel loaded;
  ASSIGN_OR_RETURN(loaded.dir, ResolveModelDir(path));
  const std::string config_path = (fs::path(loaded.dir) / "model.textproto").string();
  absl::StatusOr<model::ModelConfig> config = model::LoadConfig(config_path);
  if (!config.ok()) {
    if (absl::StrContains(config.status().message(), config_path)) return config.status();
    return absl::Status(config.status().code(),
                        absl::StrCat(config_path, ": ", config.status().message()));
  }
  loaded.config = *std::move(config);
  const std::string tokenizer_path = (fs::path(loaded.dir) / "tokenizer.json").string();
  ASSIGN_OR_RETURN(loaded.tokenizer, tokenizer::Tokenizer::FromFile(tokenizer_path));
  if (loaded.tokenizer->vocab_size() > loaded.config.vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(tokenizer_path, " has ids up to ", loaded.tokenizer->vocab_size() - 1,
                     " but the model's vocab_size is ", loaded.config.vocab_size()));
  }
  loaded.model = std::make_unique<model::ModelStage<float>>(
      loaded.config, model::StageRange::Whole(loaded.config));
  absl::Status status = model::LoadDeepSeekCheckpoint(loaded.dir, loaded.model->Params());
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat(loaded.dir, ": ", status.message()));
  }
  return loaded;
}

absl::Status WriteModelDir(const std::string& dir, const model::ModelConfig& config,
                           const std::vector<model::Param<float>*>& params,
                           const std::string& tokenizer_json) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  const std::string file = "model-stage0-ep0.safetensors";
  std::vector<std::pair<std::string, core::TensorView>> tensors;
  nlohmann::json weight_map = nlohmann::json::object();
  int64_t total = 0;
  for (model::Param<float>* p : params) {
    tensors.emplace_back(
        p->name, core::TensorView(p->value.data(), core::DType::kF32, core::Shape(p->shape())));
    weight_map[p->name] = file;
    total += static_cast<int64_t>(p->value.size() * sizeof(float));
  }
  RETURN_IF_ERROR(
      model::WriteSafetensors((fs::path(dir) / file).string(), tensors, {{"format", "pt"}}));
  nlohmann::json index;
  index["metadata"]["total_size"] = total;
  index["weight_map"] = weight_map;
  RETURN_IF_ERROR(
      WriteFile((fs::path(dir) / "model.safetensors.index.json").string(), index.dump(2)));
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  RETURN_IF_ERROR(WriteFile((fs::path(dir) / "model.textproto").string(), text));
  return WriteFile((fs::path(dir) / "tokenizer.json").string(), tokenizer_json);
}

}  // namespace serving
