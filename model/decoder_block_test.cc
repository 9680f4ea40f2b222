#include "model/decoder_block.h"

#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "gtest/gtest.h"
#include "model/config.h"
#include "model/init.h"
#include "model/internal/ep_emulation.h"
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
  testing::LayerCalls<DecoderBlock<double>, Matrix<double>> calls_{
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
  testing::ExpectLayerGradientsMatch(&block_, calls_, RandomMatrix<double>(6, 16, 2));
}

TEST_P(DecoderBlockTest, DeferredBackwardWeightIsExact) {
  testing::ExpectDeferredBackwardWeightExact(&block_, calls_, RandomMatrix<double>(6, 16, 2),
                                             RandomMatrix<double>(3, 16, 3));
}

// The MoE layer with expert parallelism over 2 and 4 ranks (run in turn, all-to-alls emulated)
// gives the outputs, input gradients and weight gradients of one rank.
TEST_P(DecoderBlockTest, ExpertParallelPhasesMatchOneRank) {
  if (Layer() != 1) GTEST_SKIP() << "dense layer";
  constexpr int64_t kTokensPerRank = 6;
  for (int ranks : {2, 4}) {
    const Matrix<double> x = RandomMatrix<double>(ranks * kTokensPerRank, 16, 2);
    const Matrix<double> dy = RandomMatrix<double>(ranks * kTokensPerRank, 16, 3);
    ZeroGrads(block_.Params());
    DecoderBlock<double>::Context whole;
    const Matrix<double> y_ref = block_.Forward(x, {3}, &whole);
    const Matrix<double> dx_ref = block_.BackwardInput(dy, &whole);
    block_.BackwardWeight(&whole);

    std::vector<std::unique_ptr<DecoderBlock<double>>> blocks;
    std::vector<DecoderBlock<double>::Context> ctx(ranks);
    testing::EpRows send(ranks), d_rows(ranks), out(ranks), dx_rows(ranks);
    testing::EpCounts counts(ranks), recv_counts, unused;
    for (int r = 0; r < ranks; ++r) {
      blocks.push_back(std::make_unique<DecoderBlock<double>>(Config(), 1, r, ranks));
      InitParams(blocks[r]->Params(), 0.3, 1);
      ExpertRows<double> rows = blocks[r]->ForwardDispatch(
          x.middleRows(r * kTokensPerRank, kTokensPerRank), {3}, &ctx[r]);
      send[r] = std::move(rows.rows);
      counts[r] = std::move(rows.expert_counts);
    }
    const testing::EpRows received = testing::EmulateDispatch(send, counts, ranks, &recv_counts);
    for (int r = 0; r < ranks; ++r) {
      out[r] = blocks[r]->ForwardExperts(received[r], recv_counts[r], &ctx[r]);
    }
    const testing::EpRows returned = testing::EmulateReturn(out, recv_counts, ranks);
    for (int r = 0; r < ranks; ++r) {
      const Matrix<double> y = blocks[r]->ForwardCombine(returned[r], &ctx[r]);
      EXPECT_TRUE(y.isApprox(y_ref.middleRows(r * kTokensPerRank, kTokensPerRank), 1e-13));
      d_rows[r] =
          blocks[r]->BackwardCombine(dy.middleRows(r * kTokensPerRank, kTokensPerRank), &ctx[r]);
    }
    const testing::EpRows d_received = testing::EmulateDispatch(d_rows, counts, ranks, &unused);
    for (int r = 0; r < ranks; ++r) {
      dx_rows[r] = blocks[r]->BackwardExperts(d_received[r], &ctx[r]);
    }
    const testing::EpRows dx_returned = testing::EmulateReturn(dx_rows, recv_counts, ranks);
    std::map<std::string, Matrix<double>> grads;
    for (int r = 0; r < ranks; ++r) {
      const Matrix<double> dx = blocks[r]->BackwardDispatch(dx_returned[r], &ctx[r]);
      EXPECT_TRUE(dx.isApprox(dx_ref.middleRows(r * kTokensPerRank, kTokensPerRank), 1e-13));
      blocks[r]->BackwardWeight(&ctx[r]);
      for (Param<double>* p : blocks[r]->Params()) {
        if (!p->trainable()) continue;
        auto [it, inserted] = grads.emplace(p->name, p->grad);
        if (!inserted) it->second += p->grad;  // replicated weights: the data-parallel sum
      }
    }
    for (Param<double>* p : block_.Params()) {
      if (p->trainable()) {
        EXPECT_TRUE(grads.at(p->name).isApprox(p->grad, 1e-12)) << p->name;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DenseAndMoe, DecoderBlockTest,
                         ::testing::Combine(::testing::Values("tiny", "tiny_mla"),
                                            ::testing::Values(0, 1)));

}  // namespace
}  // namespace model
