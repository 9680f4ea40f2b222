// Writes, for each model config given, what the PyTorch port of DeepSeek's reference model
// (deepseek_reference.py) needs to check our forward pass: the weights (f32 safetensors under
// DeepSeek's checkpoint names, as training saves them), the reference's ModelArgs for the config,
// the tokens (two sequences of 12, or of 80 with YaRN), and our logits in f64 and in f32 (JSON,
// doubles printed to round-trip).
//
//   dump_cases OUT_DIR CONFIG.textproto...
//
// For CONFIG "<dir>/<case>.textproto" it writes OUT_DIR/<case>.safetensors and <case>.json. The
// weights are drawn from the config's init_std (seed 17), and a gate bias, where the config has
// one, uniformly from [-0.1, 0.1) so that it changes which experts are chosen. The f64 model
// loads the saved file (LoadDeepSeekCheckpoint), so both sides compute from the same numbers.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/status_macros.h"
#include "model/config.h"
#include "model/deepseek_checkpoint.h"
#include "model/init.h"
#include "model/model_stage.h"
#include "model/weights.h"
#include "nlohmann/json.hpp"

namespace model {
namespace {

constexpr int kSequences = 2;
constexpr int kSeqLen = 12;
constexpr int kYarnSeqLen = 80;  // with YaRN, positions far enough to turn the slow pairs

// DeepSeek's ModelArgs for `config` (an MLA model); gate_bias and rms_norm_eps are the two
// things the reference fixes (the bias by width, eps at 1e-6) that our config states.
nlohmann::json ModelArgs(const ModelConfig& config) {
  const MoeConfig& moe = config.moe();
  const MlaConfig& mla = config.mla();
  return {
      {"max_batch_size", kSequences},
      {"max_seq_len", config.max_seq_len()},
      {"vocab_size", config.vocab_size()},
      {"dim", config.hidden_size()},
      {"inter_dim", config.intermediate_size()},
      {"moe_inter_dim", moe.expert_intermediate_size()},
      {"n_layers", config.num_layers()},
      {"n_dense_layers", config.first_k_dense_layers()},
      {"n_heads", config.num_heads()},
      {"n_routed_experts", moe.num_routed_experts()},
      {"n_shared_experts", moe.num_shared_experts()},
      {"n_activated_experts", moe.top_k()},
      {"n_expert_groups", moe.num_groups()},
      {"n_limited_groups", moe.topk_groups()},
      {"score_func", moe.score_func()},
      {"route_scale", moe.route_scale()},
      {"q_lora_rank", mla.q_lora_rank()},
      {"kv_lora_rank", mla.kv_lora_rank()},
      {"qk_nope_head_dim", mla.qk_nope_head_dim()},
      {"qk_rope_head_dim", mla.qk_rope_head_dim()},
      {"v_head_dim", mla.v_head_dim()},
      {"original_seq_len", config.original_seq_len()},
      {"rope_theta", config.rope_theta()},
      {"rope_factor", config.rope_factor()},
      {"beta_fast", config.beta_fast()},
      {"beta_slow", config.beta_slow()},
      {"mscale", config.mscale()},
      {"gate_bias", GateHasBias(moe, config.hidden_size())},
      {"rms_norm_eps", config.rms_norm_eps()},
  };
}

template <typename T>
nlohmann::json Rows(const Matrix<T>& m) {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t i = 0; i < m.rows(); ++i) {
    std::vector<double> row(m.cols());
    for (int64_t j = 0; j < m.cols(); ++j) row[j] = static_cast<double>(m(i, j));
    rows.push_back(row);
  }
  return rows;
}

absl::Status DumpCase(const std::string& config_path, const std::string& out_dir) {
  ASSIGN_OR_RETURN(const ModelConfig config, LoadConfig(config_path));
  if (!config.has_mla() || !config.has_moe()) {
    return absl::InvalidArgumentError(config_path + ": the reference model is MLA + MoE");
  }
  const std::string name = std::filesystem::path(config_path).stem().string();
  const std::string weights = out_dir + "/" + name + ".safetensors";

  ModelStage<float> model32(config, StageRange::Whole(config));
  InitParams(model32.Params(), config.init_std(), 17);
  nlohmann::json reference_names = nlohmann::json::object();
  for (Param<float>* p : model32.Params()) {
    if (p->name.find("e_score_correction_bias") != std::string::npos) {
      p->value = RandomMatrix<float>(1, p->value.cols(), SeedFor(17, p->name), 0.1);
    }
    ASSIGN_OR_RETURN(reference_names[p->name], ReferenceName(p->name));
  }
  RETURN_IF_ERROR(SaveWeights(weights, model32.Params()));
  ModelStage<double> model64(config, StageRange::Whole(config));
  RETURN_IF_ERROR(LoadDeepSeekCheckpoint(weights, model64.Params()));

  InferenceBatch batch;
  batch.seq_len = YarnEnabled(config) ? kYarnSeqLen : kSeqLen;
  Rng rng(SeedFor(17, name));
  for (int64_t t = 0; t < kSequences * batch.seq_len; ++t) {
    batch.tokens.push_back(static_cast<int32_t>(rng.Next() % config.vocab_size()));
  }
  ASSIGN_OR_RETURN(const Matrix<double> logits64, model64.InferenceForward(batch, {}));
  ASSIGN_OR_RETURN(const Matrix<float> logits32, model32.InferenceForward(batch, {}));
  batch.last_positions = 1;
  ASSIGN_OR_RETURN(const Matrix<double> last64, model64.InferenceForward(batch, {}));

  const nlohmann::json json = {
      {"name", name},
      {"weights", name + ".safetensors"},
      {"args", ModelArgs(config)},
      {"tokens", batch.tokens},
      {"seq_len", batch.seq_len},
      {"reference_names", reference_names},
      {"logits_f64", Rows(logits64)},
      {"logits_f32", Rows(logits32)},
      {"last_logits_f64", Rows(last64)},
  };
  std::ofstream out(out_dir + "/" + name + ".json");
  out << json.dump(1);
  out.close();
  if (!out) return absl::UnavailableError("cannot write " + out_dir + "/" + name + ".json");
  return absl::OkStatus();
}

}  // namespace
}  // namespace model

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR CONFIG.textproto...\n", argv[0]);
    return 2;
  }
  for (int i = 2; i < argc; ++i) {
    const absl::Status status = model::DumpCase(argv[i], argv[1]);
    if (!status.ok()) {
      std::fprintf(stderr, "%s: %s\n", argv[i], status.ToString().c_str());
      return 1;
    }
  }
  return 0;
}
