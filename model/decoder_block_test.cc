#include "model/decoder_block.h"

#include <string>
#include <tuple>

#include "gtest/gtest.h"
#include "model/config.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

// Layer 0 of the tiny configs is dense, layer 1 an MoE layer; tiny_mla uses MLA. The balance loss
// is off here (the finite differences see the block's output only); the gate and model tests
// check it.
class DecoderBlockTest : public ::testing::TestWithParam<std::tuple<const char*, int>> {
 protected:
  DecoderBlockTest() : block_(Config(), Layer()) { InitParams(block_.Params(), 0.3, 1); }
  static int Layer() { return std::get<1>(GetParam()); }
  static ModelConfig Config() {
    absl::StatusOr<ModelConfig> config =
        LoadConfig(std::string("model/testdata/") + std::get<0>(GetParam()) + ".textproto");
    EXPECT_TRUE(config.ok()) << config.status();
    config->mutable_moe()->set_sequence_aux_loss_alpha(0);
    return *config;
  }
  DecoderBlock<double> block_;
  test_util::LayerCalls<DecoderBlock<double>, Matrix<double>> calls_{
      [this](const Matrix<double>& x, DecoderBlock<double>::Context* ctx) {
        return block_.Forward(x, {3}, ctx);
      },
      [this](Matrix<double> dy, DecoderBlock<double>::Context* ctx) {
        return block_.BackwardInput(std::move(dy), ctx);
      }};
};

TEST_P(DecoderBlockTest, KindFollowsFirstKDenseLayers) {
  EXPECT_EQ(block_.is_moe(), Layer() == 1);
  EXPECT_EQ(block_.Params()[0]->name,
            "model.layers." + std::to_string(Layer()) + ".input_layernorm.weight");
  EXPECT_EQ(block_.Params()[1]->name,
            "model.layers." + std::to_string(Layer()) +
                (Config().has_mla() ? ".self_attn.q_a_proj.weight" : ".self_attn.q_proj.weight"));
}

TEST_P(DecoderBlockTest, GradientsMatchFiniteDifferences) {
  test_util::ExpectLayerGradientsMatch(&block_, calls_, RandomMatrix<double>(6, 16, 2));
}

TEST_P(DecoderBlockTest, DeferredBackwardWeightIsExact) {
  test_util::ExpectDeferredBackwardWeightExact(&block_, calls_, RandomMatrix<double>(6, 16, 2),
                                               RandomMatrix<double>(3, 16, 3));
}

// The expert-parallel phases are tested over real ranks in model_stage_ep_test.cc.

INSTANTIATE_TEST_SUITE_P(DenseAndMoe, DecoderBlockTest,
                         ::testing::Combine(::testing::Values("tiny", "tiny_mla"),
                                            ::testing::Values(0, 1)));

}  // namespace
}  // namespace model
