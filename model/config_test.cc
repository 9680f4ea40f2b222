#include "model/config.h"

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
  EXPECT_FLOAT_EQ(config->moe().route_scale(), 2.5f);
  EXPECT_FALSE(IsMoeLayer(*config, 0));
  EXPECT_TRUE(IsMoeLayer(*config, 1));
}

TEST(ConfigTest, LoadsDeepSeekV3) {
  absl::StatusOr<ModelConfig> config = LoadConfig("model/testdata/deepseek_v3.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_layers(), 61);
  EXPECT_EQ(config->moe().top_k(), 8);
  EXPECT_EQ(config->moe().num_groups(), 8);
  EXPECT_EQ(config->moe().topk_groups(), 4);
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
