#include "training/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace training {
namespace fs = std::filesystem;
namespace {

constexpr char kPrefix[] = "step-";
constexpr char kTmpInfix[] = ".tmp-";

absl::Status FsyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot open ", path, " to sync"));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("fsync failed on ", path));
  return absl::OkStatus();
}

// Removes a checkpoint directory so that no crash leaves it half removed under its own name:
// renamed to a temporary name first (which ListCheckpoints skips), then removed.
void RemoveCheckpoint(const std::string& path) {
  std::error_code error;
  if (!fs::exists(path, error)) return;
  const std::string doomed = absl::StrCat(path, kTmpInfix, "removed");
  fs::remove_all(doomed, error);
  fs::rename(path, doomed, error);
  fs::remove_all(error ? path : doomed, error);
}

}  // namespace

std::string CheckpointName(int64_t step) { return absl::StrFormat("%s%08d", kPrefix, step); }

absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> ListCheckpoints(
    const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code error;
  if (!fs::exists(dir, error)) return found;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || !absl::StartsWith(name, kPrefix) ||
        absl::StrContains(name, kTmpInfix)) {
      continue;
    }
    int64_t step = 0;
    if (!absl::SimpleAtoi(name.substr(sizeof(kPrefix) - 1), &step)) continue;
    found.emplace_back(step, entry.path().string());
  }
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot list ", dir, ": ", error.message()));
  }
  std::sort(found.begin(), found.end());
  return found;
}

absl::StatusOr<std::string> BeginCheckpoint(const std::string& dir, int64_t step) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  }
  const std::string tmp =
      (fs::path(dir) / absl::StrCat(CheckpointName(step), kTmpInfix, ::getpid())).string();
  fs::remove_all(tmp, error);
  fs::create_directory(tmp, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot create ", tmp, ": ", error.message()));
  }
  return tmp;
}

absl::Status WriteFileSynced(const std::string& path, const std::string& contents) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << contents;
    out.close();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  return FsyncPath(path, /*directory=*/false);
}

absl::Status CommitCheckpoint(const std::string& dir, const std::string& tmp_dir, int64_t step,
                              int keep) {
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(tmp_dir, error)) {
    RETURN_IF_ERROR(FsyncPath(entry.path().string(), /*directory=*/false));
  }
  RETURN_IF_ERROR(FsyncPath(tmp_dir, /*directory=*/true));
  const std::string final_dir = (fs::path(dir) / CheckpointName(step)).string();
  RemoveCheckpoint(final_dir);  // a checkpoint of the same step from an earlier run
  fs::rename(tmp_dir, final_dir, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot rename ", tmp_dir, " to ", final_dir, ": ", error.message()));
  }
  RETURN_IF_ERROR(FsyncPath(dir, /*directory=*/true));
  // Clean up: older checkpoints beyond `keep`, and temporary directories of crashed writers.
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (absl::StrContains(name, kTmpInfix)) fs::remove_all(entry.path(), error);
  }
  ASSIGN_OR_RETURN(auto checkpoints, ListCheckpoints(dir));
  if (keep > 0) {
    for (size_t i = 0; i + keep < checkpoints.size(); ++i) RemoveCheckpoint(checkpoints[i].second);
  }
  return absl::OkStatus();
}

std::string TrainerState::ToJson() const {
  nlohmann::json json;
  json["step"] = step;
  json["tokens"] = tokens;
  json["data_states"] = data_states;
  json["model_name"] = model_name;
  return json.dump(2) + "\n";
}

absl::StatusOr<TrainerState> TrainerState::FromJson(const std::string& text) {
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::DataLossError("trainer_state.json is not a JSON object");
  }
  TrainerState state;
  if (!json.contains("step") || !json["step"].is_number_integer() || !json.contains("tokens") ||
      !json["tokens"].is_number_integer() || !json.contains("data_states") ||
      !json["data_states"].is_array()) {
    return absl::InvalidArgumentError("trainer_state.json lacks step, tokens or data_states");
  }
  state.step = json["step"].get<int64_t>();
  state.tokens = json["tokens"].get<int64_t>();
  for (const nlohmann::json& s : json["data_states"]) {
    if (!s.is_string()) return absl::InvalidArgumentError("data_states holds a non-string");
    state.data_states.push_back(s.get<std::string>());
  }
  if (json.contains("model_name") && json["model_name"].is_string()) {
    state.model_name = json["model_name"].get<std::string>();
  }
  return state;
}

absl::StatusOr<std::vector<std::pair<std::string, core::TensorView>>> ReadTensors(
    const std::string& path, std::map<std::string, core::Tensor>* storage) {
  ASSIGN_OR_RETURN(model::SafetensorsFile file, model::ReadSafetensors(path));
  std::vector<std::pair<std::string, core::TensorView>> views;
  for (auto& [name, tensor] : file.tensors) {
    views.emplace_back(name, tensor.view());
    (*storage)[name] = std::move(tensor);
  }
  return views;
}

}  // namespace training
