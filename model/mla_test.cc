#include "model/mla.h"

#include <tuple>

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

constexpr int64_t kHidden = 8;
constexpr int64_t kHeads = 2;

// q_lora_rank 0 (queries straight from x) and 6 (through the bottleneck).
MlaConfig TestConfig(int q_lora_rank) {
  MlaConfig mla;
  mla.set_q_lora_rank(q_lora_rank);
  mla.set_kv_lora_rank(5);
  mla.set_qk_nope_head_dim(3);
  mla.set_qk_rope_head_dim(4);
  mla.set_v_head_dim(2);
  return mla;
}

// Plain RoPE (theta 100), or YaRN: a context of 128 over an original 64, factor 40, so that the
// second of the two rotated pairs is half interpolated and the softmax scale grows by mscale^2.
RopeSpec TestRope(bool yarn) {
  if (!yarn) return RopeSpec::Plain(4, 100);
  ModelConfig config;
  config.set_rope_theta(100);
  config.set_max_seq_len(128);
  config.set_original_seq_len(64);
  const RopeSpec spec = RopeSpec::FromConfig(config, 4);
  EXPECT_EQ(spec.inv_freq[0], 1.0);
  EXPECT_DOUBLE_EQ(spec.inv_freq[1], 0.1 / 40 * 0.5 + 0.1 * 0.5);
  EXPECT_GT(spec.softmax_scale_factor, 1.5);
  return spec;
}

// Parameters: the query rank, YaRN or not.
class MlaTest : public ::testing::TestWithParam<std::tuple<int, bool>> {
 protected:
  MlaTest()
      : mla_("a.", kHidden, kHeads, TestConfig(std::get<0>(GetParam())),
             TestRope(std::get<1>(GetParam())), 1e-6) {
    InitParams(mla_.Params(), 0.5, 1);
  }
  Mla<double> mla_;
  test_util::LayerCalls<Mla<double>, Matrix<double>> calls_{
      [this](const Matrix<double>& x, Mla<double>::Context* ctx) {
        return mla_.Forward(x, 3, ctx);
      },
      [this](Matrix<double> dy, Mla<double>::Context* ctx) {
        return mla_.BackwardInput(std::move(dy), ctx);
      }};
};

TEST_P(MlaTest, NamesFollowDeepSeekV3) {
  const std::vector<Param<double>*> params = mla_.Params();
  EXPECT_EQ(params.front()->name,
            std::get<0>(GetParam()) > 0 ? "a.q_a_proj.weight" : "a.q_proj.weight");
  EXPECT_EQ(params.back()->name, "a.o_proj.weight");
  EXPECT_EQ(params[params.size() - 4]->name, "a.kv_a_proj_with_mqa.weight");
  EXPECT_EQ(params[params.size() - 4]->shape(), (std::vector<int64_t>{5 + 4, kHidden}));
}

TEST_P(MlaTest, IsCausal) {
  Matrix<double> x = RandomMatrix<double>(4, kHidden, 2);
  Mla<double>::Context ctx, ctx2;
  const Matrix<double> y = mla_.Forward(x, 4, &ctx);
  x.row(3).setConstant(5.0);
  const Matrix<double> y2 = mla_.Forward(x, 4, &ctx2);
  EXPECT_TRUE(y.topRows(3).isApprox(y2.topRows(3), 1e-14));
  EXPECT_FALSE(y.row(3).isApprox(y2.row(3), 1e-6));
}

TEST_P(MlaTest, GradientsMatchFiniteDifferences) {
  test_util::ExpectLayerGradientsMatch(&mla_, calls_, RandomMatrix<double>(6, kHidden, 2));
}

TEST_P(MlaTest, DeferredBackwardWeightIsExact) {
  test_util::ExpectDeferredBackwardWeightExact(&mla_, calls_, RandomMatrix<double>(6, kHidden, 2),
                                               RandomMatrix<double>(3, kHidden, 3));
}

INSTANTIATE_TEST_SUITE_P(QueryRankAndYarn, MlaTest,
                         ::testing::Combine(::testing::Values(0, 6), ::testing::Bool()));

}  // namespace
}  // namespace model
