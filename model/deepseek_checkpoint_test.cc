#include "model/deepseek_checkpoint.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "core/dtype.h"
#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/test_model.h"
#include "model/model_stage.h"
#include "model/safetensors.h"

namespace model {
namespace {

std::string TempDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(ReferenceNameTest, RenamesAsConvertPy) {
  const std::pair<const char*, const char*> kCases[] = {
      {"model.embed_tokens.weight", "embed.weight"},
      {"model.layers.0.input_layernorm.weight", "layers.0.attn_norm.weight"},
      {"model.layers.0.post_attention_layernorm.weight", "layers.0.ffn_norm.weight"},
      {"model.layers.0.self_attn.q_proj.weight", "layers.0.attn.wq.weight"},
      {"model.layers.0.self_attn.q_a_proj.weight", "layers.0.attn.wq_a.weight"},
      {"model.layers.0.self_attn.q_a_proj.weight_scale_inv", "layers.0.attn.wq_a.scale"},
      {"model.layers.0.self_attn.q_a_layernorm.weight", "layers.0.attn.q_norm.weight"},
      {"model.layers.0.self_attn.q_b_proj.weight", "layers.0.attn.wq_b.weight"},
      {"model.layers.0.self_attn.kv_a_proj_with_mqa.weight", "layers.0.attn.wkv_a.weight"},
      {"model.layers.0.self_attn.kv_a_layernorm.weight", "layers.0.attn.kv_norm.weight"},
      {"model.layers.0.self_attn.kv_b_proj.weight", "layers.0.attn.wkv_b.weight"},
      {"model.layers.0.self_attn.o_proj.weight", "layers.0.attn.wo.weight"},
      {"model.layers.0.mlp.gate_proj.weight", "layers.0.ffn.w1.weight"},
      {"model.layers.0.mlp.down_proj.weight", "layers.0.ffn.w2.weight"},
      {"model.layers.0.mlp.up_proj.weight", "layers.0.ffn.w3.weight"},
      {"model.layers.3.mlp.gate.weight", "layers.3.ffn.gate.weight"},
      {"model.layers.3.mlp.gate.e_score_correction_bias", "layers.3.ffn.gate.bias"},
      {"model.layers.3.mlp.shared_experts.up_proj.weight", "layers.3.ffn.shared_experts.w3.weight"},
      {"model.layers.3.mlp.experts.255.down_proj.weight", "layers.3.ffn.experts.255.w2.weight"},
      {"model.norm.weight", "norm.weight"},
      {"lm_head.weight", "head.weight"},
  };
  for (const auto& [from, to] : kCases) {
    absl::StatusOr<std::string> name = ReferenceName(from);
    ASSERT_TRUE(name.ok()) << name.status();
    EXPECT_EQ(*name, to) << from;
  }
  const absl::Status status = ReferenceName("model.layers.0.self_attn.k_proj.weight").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("k_proj"), std::string::npos);
}

// Every parameter of an MLA model (with and without the query bottleneck, the gate with and
// without its bias) has a reference name, and no two share one.
TEST(ReferenceNameTest, CoversEveryMlaModelParameter) {
  for (const int q_lora : {0, 12}) {
    for (const bool bias : {false, true}) {
      ModelConfig config = test_util::TestConfig("tiny_mla");
      config.mutable_mla()->set_q_lora_rank(q_lora);
      config.mutable_moe()->set_gate_bias(bias);
      config.mutable_moe()->set_bias_update_speed(0);
      ModelStage<float> model(config, StageRange::Whole(config));
      std::set<std::string> names;
      for (const Param<float>* p : model.Params()) {
        absl::StatusOr<std::string> name = ReferenceName(p->name);
        ASSERT_TRUE(name.ok()) << name.status();
        EXPECT_TRUE(names.insert(*name).second) << *name;
      }
      EXPECT_EQ(names.count("layers.1.ffn.gate.bias"), bias ? 1u : 0u);
      EXPECT_EQ(names.count("layers.0.attn.wq.weight"), q_lora == 0 ? 1u : 0u);
    }
  }
}

TEST(Fp8Test, DecodesE4m3fn) {
  EXPECT_EQ(Fp8E4m3ToFloat(0x00), 0.0f);
  EXPECT_EQ(Fp8E4m3ToFloat(0x38), 1.0f);                  // exponent 7 = bias
  EXPECT_EQ(Fp8E4m3ToFloat(0x3c), 1.5f);                  // mantissa 4 / 8
  EXPECT_EQ(Fp8E4m3ToFloat(0xb8), -1.0f);                 // sign
  EXPECT_EQ(Fp8E4m3ToFloat(0x7e), 448.0f);                // the largest
  EXPECT_EQ(Fp8E4m3ToFloat(0x08), 0.015625f);             // the smallest normal, 2^-6
  EXPECT_EQ(Fp8E4m3ToFloat(0x01), std::ldexp(1.0f, -9));  // the smallest subnormal
  EXPECT_TRUE(std::isnan(Fp8E4m3ToFloat(0x7f)));
  EXPECT_TRUE(std::isnan(Fp8E4m3ToFloat(0xff)));
  for (int b = 1; b < 0x7f; ++b) EXPECT_LT(Fp8E4m3ToFloat(b - 1), Fp8E4m3ToFloat(b)) << b;
}

TEST(Fp8Test, DequantizesPer128x128Block) {
  const int64_t rows = 130, cols = 257;  // blocks of 128: 2 x 3, the last ones partial
  std::vector<uint8_t> w(rows * cols);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint8_t>((i * 37) % 0x7f);
  const std::vector<float> scale = {0.5f, 2.0f, 0.1f, 3.0f, 0.25f, 1e-3f};
  const Matrix<double> y = DequantizeFp8<double>(w.data(), rows, cols, scale.data());
  const Matrix<float> yf = DequantizeFp8<float>(w.data(), rows, cols, scale.data());
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const float s = scale[(i / 128) * 3 + j / 128];
      const float v = Fp8E4m3ToFloat(w[i * cols + j]);
      ASSERT_EQ(y(i, j), static_cast<double>(v) * s) << i << "," << j;
      ASSERT_EQ(yf(i, j), v * s) << i << "," << j;
    }
  }
}

RawTensor F32Tensor(const Matrix<float>& m, std::vector<int64_t> shape) {
  RawTensor t{"F32", std::move(shape), std::string(m.size() * 4, '\0')};
  std::memcpy(t.bytes.data(), m.data(), t.bytes.size());
  return t;
}

RawTensor Bf16Tensor(const Matrix<float>& m, std::vector<int64_t> shape, Matrix<float>* rounded) {
  RawTensor t{"BF16", std::move(shape), std::string(m.size() * 2, '\0')};
  *rounded = m;
  for (int64_t i = 0; i < m.size(); ++i) {
    const core::BFloat16 b = core::ToBFloat16(m.data()[i]);
    std::memcpy(t.bytes.data() + 2 * i, &b.bits, 2);
    rounded->data()[i] = core::ToFloat(b);
  }
  return t;
}

// A DeepSeek-style checkpoint of the tiny MLA model in two shards with an index: q_a_proj in fp8
// with its block scales, the norms in bf16, the rest f32, and an MTP-layer tensor nobody asks for.
class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = test_util::TestConfig("tiny_mla");
    ModelStage<float> source(config_, StageRange::Whole(config_));
    InitParams(source.Params(), config_.init_std(), 5);
    dir_ = TempDir("checkpoint");
    std::vector<std::pair<std::string, RawTensor>> shards[2];
    int i = 0;
    for (const Param<float>* p : source.Params()) {
      RawTensor tensor;
      Matrix<float> value = p->value;
      if (p->name == kFp8Name) {
        // q_a_proj [12, 16]: bytes b with scale 0.5 -> fp8(b) / 2.
        tensor = {"F8_E4M3", p->shape(), std::string(p->value.size(), '\0')};
        for (int64_t k = 0; k < value.size(); ++k) {
          const uint8_t b = static_cast<uint8_t>((k * 11) % 0x7f);
          tensor.bytes[k] = static_cast<char>(b);
          value.data()[k] = Fp8E4m3ToFloat(b) * 0.5f;
        }
        shards[i % 2].emplace_back(std::string(kFp8Name) + "_scale_inv",
                                   F32Tensor(Matrix<float>::Constant(1, 1, 0.5f), {1, 1}));
      } else if (p->kind == ParamKind::kNormScale) {
        tensor = Bf16Tensor(p->value, p->shape(), &value);
      } else {
        tensor = F32Tensor(p->value, p->shape());
      }
      expected_.push_back(value);
      shards[i % 2].emplace_back(p->name, std::move(tensor));
      ++i;
    }
    shards[1].emplace_back("model.layers.61.eh_proj.weight",
                           F32Tensor(Matrix<float>::Zero(2, 2), {2, 2}));
    std::ofstream index(dir_ + "/model.safetensors.index.json");
    index << "{\"metadata\": {}, \"weight_map\": {";
    for (int s = 0; s < 2; ++s) {
      const std::string file = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
      ASSERT_TRUE(WriteSafetensorsRaw(shards[s], dir_ + "/" + file).ok());
      for (size_t k = 0; k < shards[s].size(); ++k) {
        index << (s + k > 0 ? ", " : "") << "\"" << shards[s][k].first << "\": \"" << file << "\"";
      }
    }
    index << "}}";
  }

  static constexpr const char* kFp8Name = "model.layers.0.self_attn.q_a_proj.weight";
  ModelConfig config_;
  std::string dir_;
  std::vector<Matrix<float>> expected_;
};

TEST_F(CheckpointTest, LoadsShardsBf16AndFp8IntoDoubleAndFloat) {
  ModelStage<double> model(config_, StageRange::Whole(config_));
  ASSERT_TRUE(LoadDeepSeekCheckpoint(dir_, model.Params()).ok())
      << LoadDeepSeekCheckpoint(dir_, model.Params());
  ModelStage<float> model_f(config_, StageRange::Whole(config_));
  ASSERT_TRUE(LoadDeepSeekCheckpoint(dir_, model_f.Params()).ok());
  const std::vector<Param<double>*> params = model.Params();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(params[i]->value, expected_[i].cast<double>()) << params[i]->name;
    EXPECT_EQ(model_f.Params()[i]->value, expected_[i]) << params[i]->name;
  }
  // A stage loads its part of the same checkpoint.
  ModelStage<float> last(config_, {1, 2, false, true});
  EXPECT_TRUE(LoadDeepSeekCheckpoint(dir_, last.Params()).ok());
  // Without the index, every .safetensors file of the directory is a shard.
  std::filesystem::remove(dir_ + "/model.safetensors.index.json");
  ModelStage<double> again(config_, StageRange::Whole(config_));
  ASSERT_TRUE(LoadDeepSeekCheckpoint(dir_, again.Params()).ok());
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(again.Params()[i]->value, params[i]->value) << params[i]->name;
  }
}

TEST_F(CheckpointTest, ErrorsNameTheTensorAndChangeNothing) {
  ModelConfig bigger = config_;
  bigger.set_vocab_size(33);
  ModelStage<float> model(bigger, StageRange::Whole(bigger));
  const absl::Status shape = LoadDeepSeekCheckpoint(dir_, model.Params());
  EXPECT_EQ(shape.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(shape.message()).find("model.embed_tokens.weight"), std::string::npos);
  EXPECT_TRUE(model.Params()[1]->value.isZero());  // nothing loaded

  ModelConfig standard = config_;
  standard.clear_mla();
  ModelStage<float> no_such(standard, StageRange::Whole(standard));
  EXPECT_EQ(LoadDeepSeekCheckpoint(dir_, no_such.Params()).code(), absl::StatusCode::kNotFound);

  // The fp8 weight without its scale.
  const std::string one = TempDir("no_scale") + "/model.safetensors";
  RawTensor fp8{"F8_E4M3", {12, 16}, std::string(12 * 16, '\x38')};
  ASSERT_TRUE(WriteSafetensorsRaw({{kFp8Name, fp8}}, one).ok());
  ModelStage<float> whole(config_, StageRange::Whole(config_));
  std::vector<Param<float>*> q_a;
  for (Param<float>* p : whole.Params()) {
    if (p->name == kFp8Name) q_a.push_back(p);
  }
  const absl::Status scale = LoadDeepSeekCheckpoint(one, q_a);
  EXPECT_EQ(scale.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(scale.message()).find("weight_scale_inv"), std::string::npos) << scale;
}

}  // namespace
}  // namespace model
