// Loading and validating ModelConfig (config.proto) from its text format.
//
//   ASSIGN_OR_RETURN(model::ModelConfig config,
//                    model::LoadConfig("model/testdata/tiny.textproto"));
#ifndef MODEL_CONFIG_H_
#define MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config.pb.h"

namespace model {

// OK if every field is in range and the fields agree (groups divide the experts, enough experts
// in the kept groups for top_k, YaRN's fields consistent, a known moe.score_func, ...);
// INVALID_ARGUMENT naming the first bad field otherwise. The moe section is checked only when some
// layer is an MoE layer (first_k_dense_layers < num_layers).
absl::Status ValidateConfig(const ModelConfig& config);

// Parses a text-format ModelConfig and validates it. INVALID_ARGUMENT on a parse or range error.
absl::StatusOr<ModelConfig> ParseConfig(const std::string& text);

// Reads and parses a text-format file. NOT_FOUND if it cannot be read; as ParseConfig otherwise.
absl::StatusOr<ModelConfig> LoadConfig(const std::string& path);

// True if layer `layer` (0-based) uses an MoE block rather than a dense MLP.
inline bool IsMoeLayer(const ModelConfig& config, int layer) {
  return layer >= config.first_k_dense_layers();
}

// True if the MoE gates of a model of width `hidden` have the selection bias
// (e_score_correction_bias): moe.gate_bias when set, else hidden == 7168, as in DeepSeek's
// reference model.
inline bool GateHasBias(const MoeConfig& moe, int64_t hidden) {
  return moe.has_gate_bias() ? moe.gate_bias() : hidden == 7168;
}

// True if YaRN applies, as in the reference: max_seq_len > original_seq_len.
inline bool YarnEnabled(const ModelConfig& config) {
  return config.max_seq_len() > config.original_seq_len();
}

// The factor the attention softmax scale 1 / sqrt(qk head dim) is multiplied by: with YaRN
// (YarnEnabled) m^2 where m = 0.1 * mscale * ln(rope_factor) + 1, as in the reference's MLA;
// 1 otherwise.
double AttentionScaleFactor(const ModelConfig& config);

}  // namespace model

#endif  // MODEL_CONFIG_H_
