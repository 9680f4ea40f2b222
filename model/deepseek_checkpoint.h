// Loading DeepSeek's own checkpoints: the Hugging Face layout DeepSeek publishes for
// DeepSeek-V2/V3 (model.safetensors.index.json and its shards, tensors named as our parameters
// are, "model.layers.3.mlp.experts.7.down_proj.weight"), with bf16 tensors and fp8 (e4m3) weights
// scaled per 128x128 block by a "..._scale_inv" tensor beside them, and the mapping of those
// names to the internal names of DeepSeek's reference model (inference/model.py), as its
// convert.py renames them.
#ifndef MODEL_DEEPSEEK_CHECKPOINT_H_
#define MODEL_DEEPSEEK_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/matrix.h"

namespace model {

// The reference model's name for a checkpoint tensor, renamed exactly as convert.py does: drop a
// leading "model.", replace "self_attn" -> "attn", "mlp" -> "ffn", "weight_scale_inv" -> "scale",
// "e_score_correction_bias" -> "bias", then replace the second-to-last dot-separated component
// through convert.py's mapping (embed_tokens -> embed, input_layernorm -> attn_norm,
// post_attention_layernorm -> ffn_norm, q_proj -> wq, q_a_proj -> wq_a, q_a_layernorm -> q_norm,
// q_b_proj -> wq_b, kv_a_proj_with_mqa -> wkv_a, kv_a_layernorm -> kv_norm, kv_b_proj -> wkv_b,
// o_proj -> wo, gate -> gate, gate_proj -> w1, down_proj -> w2, up_proj -> w3, norm -> norm,
// lm_head -> head, scale -> scale). E.g. "model.layers.3.mlp.experts.7.down_proj.weight" ->
// "layers.3.ffn.experts.7.w2.weight". INVALID_ARGUMENT if that component is not in the mapping
// (convert.py's assertion), e.g. for standard attention's k_proj, which the reference lacks.
absl::StatusOr<std::string> ReferenceName(const std::string& checkpoint_name);

// The value of an fp8 e4m3 ("e4m3fn": bias 7, no infinities, S.1111.111 is NaN) byte.
float Fp8E4m3ToFloat(uint8_t bits);

// The reference's weight_dequant: w [rows, cols] (fp8 e4m3 bytes, row-major) times
// scale_inv [ceil(rows / 128), ceil(cols / 128)] (f32, row-major) per 128x128 block:
// y[i][j] = fp8(w[i][j]) * scale_inv[i / 128][j / 128], the product in float for T = float (as
// the reference's kernel) and exact for T = double. CHECKs the sizes.
template <typename T>
Matrix<T> DequantizeFp8(const uint8_t* w, int64_t rows, int64_t cols, const float* scale_inv);

// Sets every parameter's value from the checkpoint at `path`: a directory holding
// model.safetensors.index.json (its weight_map names each tensor's shard), a directory of
// *.safetensors files, or one .safetensors file. A parameter's tensor must have the parameter's
// stored shape (Param::shape()) and be F64, F32, BF16, or F8_E4M3 with an F32 tensor named
// as it with "weight" -> "weight_scale_inv" beside it (dequantized with DequantizeFp8). Tensors
// no parameter names are ignored (the MTP layer, another stage's or EP rank's), and only the
// tensors asked for are read. NOT_FOUND if a parameter's (or a scale's) tensor is missing;
// INVALID_ARGUMENT if a shape or dtype does not fit or a tensor is in two files; NOT_FOUND /
// DATA_LOSS for unreadable files (see SafetensorsReader). On error no parameter is changed.
template <typename T>
absl::Status LoadDeepSeekCheckpoint(const std::string& path, const std::vector<Param<T>*>& params);

}  // namespace model

#endif  // MODEL_DEEPSEEK_CHECKPOINT_H_
