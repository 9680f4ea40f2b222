#include "model/config.h"

#include <cmath>
#include <string>

#include "gtest/gtest.h"

namespace model {
namespace {

TEST(ConfigTest, LoadsTiny) {
  absl::StatusOr<ModelConfig> config = LoadConfig("model/testdata/tiny.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name(), "tiny");
  EXPECT_EQ(config->hidden_size(), 16);
  EXPECT_EQ(config->moe().num_routed_experts(), 8);
  EXPECT_EQ(config->moe().route_scale(), 2.5);
  EXPECT_FALSE(IsMoeLayer(*config, 0));
  EXPECT_TRUE(IsMoeLayer(*config, 1));
  // Unset YaRN fields read as the reference's defaults; a context of 16 leaves YaRN off.
  EXPECT_EQ(config->original_seq_len(), 4096);
  EXPECT_EQ(config->rope_factor(), 40);
  EXPECT_EQ(config->beta_fast(), 32);
  EXPECT_EQ(config->beta_slow(), 1);
  EXPECT_EQ(config->mscale(), 1);
  EXPECT_FALSE(YarnEnabled(*config));
  EXPECT_EQ(AttentionScaleFactor(*config), 1.0);
  EXPECT_EQ(config->moe().score_func(), "sigmoid");
  EXPECT_TRUE(GateHasBias(config->moe(), config->hidden_size()));
}

TEST(ConfigTest, ValuesThatFeedArithmeticAreDoubles) {
  absl::StatusOr<ModelConfig> config = ParseConfig(
      "vocab_size: 32 hidden_size: 16 num_layers: 1 num_heads: 2 head_dim: 8 rope_theta: 10000.3 "
      "rms_norm_eps: 1e-5 max_seq_len: 16 init_std: 0.02 moe { num_routed_experts: 4 "
      "top_k: 1 num_groups: 1 topk_groups: 1 route_scale: 1.7 expert_intermediate_size: 8 }");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->moe().route_scale(), 1.7);
  EXPECT_EQ(config->rope_theta(), 10000.3);
  EXPECT_EQ(config->rms_norm_eps(), 1e-5);
}

TEST(ConfigTest, GateBiasDefaultsToTheReferenceRule) {
  MoeConfig moe;
  EXPECT_FALSE(GateHasBias(moe, 2048));  // DeepSeek-V2-Lite's width: no bias
  EXPECT_TRUE(GateHasBias(moe, 7168));   // DeepSeek-V3's width
  moe.set_gate_bias(true);
  EXPECT_TRUE(GateHasBias(moe, 2048));
  moe.set_gate_bias(false);
  EXPECT_FALSE(GateHasBias(moe, 7168));
}

TEST(ConfigTest, LoadsDeepSeekV3) {
  absl::StatusOr<ModelConfig> config = LoadConfig("model/testdata/deepseek_v3.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_layers(), 61);
  EXPECT_EQ(config->moe().top_k(), 8);
  EXPECT_EQ(config->moe().num_groups(), 8);
  EXPECT_EQ(config->moe().topk_groups(), 4);
  EXPECT_EQ(config->moe().route_scale(), 2.5);
  EXPECT_TRUE(GateHasBias(config->moe(), config->hidden_size()));
  // The reference's max_seq_len 16384 > original_seq_len 4096: YaRN on, with
  // mscale = 0.1 * 1 * ln(40) + 1.
  EXPECT_TRUE(YarnEnabled(*config));
  const double m = 0.1 * std::log(40.0) + 1;
  EXPECT_DOUBLE_EQ(AttentionScaleFactor(*config), m * m);
}

TEST(ConfigTest, LoadsTinyMlaAndChecksIt) {
  absl::StatusOr<ModelConfig> config = LoadConfig("model/testdata/tiny_mla.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->has_mla());
  EXPECT_EQ(config->mla().kv_lora_rank(), 10);
  config->mutable_mla()->set_qk_rope_head_dim(3);
  const absl::Status status = ValidateConfig(*config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("mla.qk_rope_head_dim"), std::string::npos);
}

TEST(ConfigTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadConfig("model/testdata/no_such.textproto").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ConfigTest, SyntaxErrorNamesTheLine) {
  absl::StatusOr<ModelConfig> config = ParseConfig("hidden_size: 4\nnum_layers: }");
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(config.status().message()).find("line 2"), std::string::npos)
      << config.status();
}

// Each case replaces one piece of a valid config; the error must name the broken field.
TEST(ConfigTest, RejectsBadFields) {
  const std::string base =
      "vocab_size: 32 hidden_size: 16 intermediate_size: 24 num_layers: 2 "
      "first_k_dense_layers: 1 num_heads: 2 head_dim: 8 rope_theta: 10000 rms_norm_eps: 1e-6 "
      "max_seq_len: 16 init_std: 0.02 moe { num_routed_experts: 8 num_shared_experts: 1 "
      "top_k: 2 num_groups: 4 topk_groups: 2 route_scale: 1 expert_intermediate_size: 8 }";
  ASSERT_TRUE(ParseConfig(base).ok()) << ParseConfig(base).status();
  const struct {
    const char* from;
    const char* to;
    const char* field;
  } kCases[] = {
      {"vocab_size: 32", "vocab_size: 0", "vocab_size"},
      {"head_dim: 8", "head_dim: 7", "head_dim"},
      {"first_k_dense_layers: 1", "first_k_dense_layers: 3", "first_k_dense_layers"},
      {"num_groups: 4", "num_groups: 3", "moe.num_groups"},
      {"topk_groups: 2", "topk_groups: 5", "moe.topk_groups"},
      {"top_k: 2 num_groups: 4 topk_groups: 2", "top_k: 3 num_groups: 4 topk_groups: 1",
       "moe.topk_groups"},
      {"top_k: 2", "top_k: 9", "moe.top_k"},
      {"route_scale: 1", "route_scale: -1", "moe.route_scale"},
      {"route_scale: 1", "route_scale: 1 score_func: \"relu\"", "moe.score_func"},
      {"route_scale: 1", "route_scale: 1 bias_update_speed: 0.001", "moe.bias_update_speed"},
      {"max_seq_len: 16", "max_seq_len: 16 original_seq_len: 0", "original_seq_len"},
      {"max_seq_len: 16", "max_seq_len: 16 rope_factor: 0.5", "rope_factor"},
      {"max_seq_len: 16", "max_seq_len: 16 beta_fast: 1 beta_slow: 1", "beta_fast"},
      {"max_seq_len: 16", "max_seq_len: 16 beta_slow: -1", "beta_slow"},
      {"max_seq_len: 16", "max_seq_len: 16 mscale: -0.5", "mscale"},
  };
  for (const auto& c : kCases) {
    std::string text = base;
    text.replace(text.find(c.from), std::string(c.from).size(), c.to);
    absl::StatusOr<ModelConfig> config = ParseConfig(text);
    ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.to;
    EXPECT_NE(std::string(config.status().message()).find(c.field), std::string::npos)
        << c.to << " -> " << config.status();
  }
}

}  // namespace
}  // namespace model
