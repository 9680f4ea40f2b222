#include "model/config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace model {
namespace {

absl::Status Require(bool ok, const char* field, const std::string& why) {
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("ModelConfig.", field, ": ", why));
}

absl::Status ValidateMla(const MlaConfig& mla) {
  RETURN_IF_ERROR(Require(mla.q_lora_rank() >= 0, "mla.q_lora_rank", "must be >= 0"));
  RETURN_IF_ERROR(Require(mla.kv_lora_rank() > 0, "mla.kv_lora_rank", "must be positive"));
  RETURN_IF_ERROR(Require(mla.qk_nope_head_dim() >= 0, "mla.qk_nope_head_dim", "must be >= 0"));
  RETURN_IF_ERROR(Require(mla.qk_rope_head_dim() > 0 && mla.qk_rope_head_dim() % 2 == 0,
                          "mla.qk_rope_head_dim", "must be positive and even"));
  return Require(mla.v_head_dim() > 0, "mla.v_head_dim", "must be positive");
}

absl::Status ValidateYarn(const ModelConfig& config) {
  RETURN_IF_ERROR(Require(config.original_seq_len() > 0, "original_seq_len", "must be positive"));
  RETURN_IF_ERROR(Require(std::isfinite(config.rope_factor()) && config.rope_factor() >= 1,
                          "rope_factor", "must be >= 1"));
  RETURN_IF_ERROR(Require(std::isfinite(config.beta_slow()) && config.beta_slow() > 0, "beta_slow",
                          "must be positive"));
  RETURN_IF_ERROR(
      Require(std::isfinite(config.beta_fast()) && config.beta_fast() > config.beta_slow(),
              "beta_fast", "must exceed beta_slow"));
  return Require(std::isfinite(config.mscale()) && config.mscale() >= 0, "mscale", "must be >= 0");
}

absl::Status ValidateMoe(const MoeConfig& moe, int64_t hidden) {
  RETURN_IF_ERROR(
      Require(moe.num_routed_experts() > 0, "moe.num_routed_experts", "must be positive"));
  RETURN_IF_ERROR(Require(moe.num_shared_experts() >= 0, "moe.num_shared_experts", "must be >= 0"));
  RETURN_IF_ERROR(Require(moe.top_k() > 0 && moe.top_k() <= moe.num_routed_experts(), "moe.top_k",
                          "must be in [1, num_routed_experts]"));
  RETURN_IF_ERROR(Require(moe.num_groups() > 0 && moe.num_routed_experts() % moe.num_groups() == 0,
                          "moe.num_groups", "must be positive and divide num_routed_experts"));
  RETURN_IF_ERROR(Require(moe.topk_groups() > 0 && moe.topk_groups() <= moe.num_groups(),
                          "moe.topk_groups", "must be in [1, num_groups]"));
  const int group_size = moe.num_routed_experts() / moe.num_groups();
  RETURN_IF_ERROR(Require(moe.topk_groups() * group_size >= moe.top_k(), "moe.topk_groups",
                          "the kept groups must hold at least top_k experts"));
  RETURN_IF_ERROR(Require(moe.route_scale() > 0, "moe.route_scale", "must be positive"));
  RETURN_IF_ERROR(Require(moe.expert_intermediate_size() > 0, "moe.expert_intermediate_size",
                          "must be positive"));
  RETURN_IF_ERROR(Require(moe.score_func() == "sigmoid" || moe.score_func() == "softmax",
                          "moe.score_func",
                          absl::StrCat("'", moe.score_func(), "' is not sigmoid or softmax")));
  RETURN_IF_ERROR(Require(moe.bias_update_speed() >= 0, "moe.bias_update_speed", "must be >= 0"));
  RETURN_IF_ERROR(Require(moe.bias_update_speed() == 0 || GateHasBias(moe, hidden),
                          "moe.bias_update_speed",
                          "must be 0 when the gate has no bias (see moe.gate_bias)"));
  return Require(moe.sequence_aux_loss_alpha() >= 0, "moe.sequence_aux_loss_alpha", "must be >= 0");
}

// Collects protobuf's parse errors into one message.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!errors_.empty()) errors_ += "; ";
    absl::StrAppend(&errors_, "line ", line + 1, " column ", column + 1, ": ", message);
  }
  const std::string& errors() const { return errors_; }

 private:
  std::string errors_;
};

}  // namespace

absl::Status ValidateConfig(const ModelConfig& config) {
  RETURN_IF_ERROR(Require(config.vocab_size() > 0, "vocab_size", "must be positive"));
  RETURN_IF_ERROR(Require(config.hidden_size() > 0, "hidden_size", "must be positive"));
  RETURN_IF_ERROR(Require(config.num_layers() > 0, "num_layers", "must be positive"));
  RETURN_IF_ERROR(Require(
      config.first_k_dense_layers() >= 0 && config.first_k_dense_layers() <= config.num_layers(),
      "first_k_dense_layers", "must be in [0, num_layers]"));
  if (config.first_k_dense_layers() > 0) {
    RETURN_IF_ERROR(
        Require(config.intermediate_size() > 0, "intermediate_size", "must be positive"));
  }
  RETURN_IF_ERROR(Require(config.num_heads() > 0, "num_heads", "must be positive"));
  RETURN_IF_ERROR(Require(config.head_dim() > 0 && config.head_dim() % 2 == 0, "head_dim",
                          "must be positive and even (RoPE rotates pairs)"));
  RETURN_IF_ERROR(Require(config.rope_theta() > 0, "rope_theta", "must be positive"));
  RETURN_IF_ERROR(Require(config.rms_norm_eps() > 0, "rms_norm_eps", "must be positive"));
  RETURN_IF_ERROR(Require(config.max_seq_len() > 0, "max_seq_len", "must be positive"));
  RETURN_IF_ERROR(Require(config.init_std() > 0, "init_std", "must be positive"));
  RETURN_IF_ERROR(ValidateYarn(config));
  if (config.has_mla()) RETURN_IF_ERROR(ValidateMla(config.mla()));
  if (config.first_k_dense_layers() < config.num_layers()) {
    if (!config.has_moe()) {
      return absl::InvalidArgumentError(
          "ModelConfig.moe: missing, but first_k_dense_layers < num_layers");
    }
    RETURN_IF_ERROR(ValidateMoe(config.moe(), config.hidden_size()));
  }
  return absl::OkStatus();
}

double AttentionScaleFactor(const ModelConfig& config) {
  if (!YarnEnabled(config)) return 1.0;
  const double m = 0.1 * config.mscale() * std::log(config.rope_factor()) + 1.0;
  return m * m;
}

absl::StatusOr<ModelConfig> ParseConfig(const std::string& text) {
  ModelConfig config;
  ErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(absl::StrCat("ModelConfig text format: ", errors.errors()));
  }
  RETURN_IF_ERROR(ValidateConfig(config));
  return config;
}

absl::StatusOr<ModelConfig> LoadConfig(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read model config '", path, "'"));
  std::stringstream text;
  text << file.rdbuf();
  absl::StatusOr<ModelConfig> config = ParseConfig(text.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace model
