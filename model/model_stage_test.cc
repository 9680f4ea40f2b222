#include "model/model_stage.h"

#include <cmath>
#include <string>

#include "gtest/gtest.h"
#include "model/config.h"
#include "model/cross_entropy.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"
#include "model/internal/test_model.h"

namespace model {
namespace {

using test_util::TestBatch;
using test_util::TestConfig;

ModelConfig TinyConfig() { return TestConfig("tiny"); }

// The whole model's loss: cross-entropy plus the MoE balance losses.
double Loss(const ModelStage<double>& model, const MicroBatch& batch) {
  ModelStage<double>::Context ctx;
  const double cross_entropy = model.Forward(batch, Matrix<double>(), &ctx)(0, 0);
  return cross_entropy + ctx.aux_loss;
}

// The tiny model with standard attention and with MLA.
class WholeModelTest : public ::testing::TestWithParam<const char*> {};

TEST_P(WholeModelTest, GradientsMatchFiniteDifferences) {
  ModelConfig config = TestConfig(GetParam());
  config.mutable_moe()->set_sequence_aux_loss_alpha(0.1f);  // large enough to show in the check
  ModelStage<double> model(config, StageRange::Whole(config));
  InitParams(model.Params(), config.init_std(), 7);
  const MicroBatch batch = TestBatch(1);
  ModelStage<double>::Context ctx;
  const double loss = model.Forward(batch, Matrix<double>(), &ctx)(0, 0);
  EXPECT_NEAR(loss, std::log(32.0), 0.5);  // near uniform predictions at initialisation
  EXPECT_GT(ctx.aux_loss, 0);
  EXPECT_EQ(model.BackwardInput(Matrix<double>(), &ctx).size(), 0);
  model.BackwardWeight(&ctx);
  test_util::ExpectParamGradientsMatch([&] { return Loss(model, batch); }, model.Params());
}

INSTANTIATE_TEST_SUITE_P(TinyConfigs, WholeModelTest, ::testing::Values("tiny", "tiny_mla"));

TEST(ModelStageTest, DeferredBackwardWeightIsExact) {
  const ModelConfig config = TinyConfig();
  ModelStage<double> model(config, StageRange::Whole(config));
  InitParams(model.Params(), config.init_std(), 7);
  test_util::ExpectDeferredBackwardWeightExact<ModelStage<double>, MicroBatch>(
      &model,
      {[&](const MicroBatch& batch, ModelStage<double>::Context* ctx) {
         return model.Forward(batch, Matrix<double>(), ctx);
       },
       [&](Matrix<double> dy, ModelStage<double>::Context* ctx) {
         return model.BackwardInput(std::move(dy), ctx);
       }},
      TestBatch(1), TestBatch(2));
}

TEST(ModelStageTest, TwoStagesEqualTheWholeModel) {
  const ModelConfig config = TinyConfig();
  ModelStage<double> whole(config, StageRange::Whole(config));
  ModelStage<double> first(config, {0, 1, true, false});
  ModelStage<double> last(config, {1, 2, false, true});
  // Initialisation depends on names only, so the stages hold the whole model's weights.
  InitParams(whole.Params(), config.init_std(), 7);
  InitParams(first.Params(), config.init_std(), 7);
  InitParams(last.Params(), config.init_std(), 7);
  const MicroBatch batch = TestBatch(3);

  ModelStage<double>::Context ctx, ctx_first, ctx_last;
  const double loss = whole.Forward(batch, Matrix<double>(), &ctx)(0, 0);
  whole.BackwardInput(Matrix<double>(), &ctx);
  whole.BackwardWeight(&ctx);
  const Matrix<double> h = first.Forward(batch, Matrix<double>(), &ctx_first);
  EXPECT_EQ(last.Forward(batch, h, &ctx_last)(0, 0), loss);
  first.BackwardInput(last.BackwardInput(Matrix<double>(), &ctx_last), &ctx_first);
  last.BackwardWeight(&ctx_last);
  first.BackwardWeight(&ctx_first);

  std::vector<Param<double>*> split = first.Params();
  for (Param<double>* p : last.Params()) split.push_back(p);
  const std::vector<Param<double>*> params = whole.Params();
  ASSERT_EQ(split.size(), params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(split[i]->name, params[i]->name);
    if (params[i]->trainable()) {
      EXPECT_TRUE(split[i]->grad == params[i]->grad) << params[i]->name;
    }
  }
}

TEST(ModelStageTest, OverlappedForwardBackwardEqualsSequential) {
  const ModelConfig config = TinyConfig();
  ModelStage<double> model(config, StageRange::Whole(config));
  InitParams(model.Params(), config.init_std(), 7);
  const MicroBatch a = TestBatch(1);
  const MicroBatch b = TestBatch(2);
  ModelStage<double>::Context ctx_a, ctx_b;
  model.Forward(a, Matrix<double>(), &ctx_a);
  const auto [loss_b, dx_a] =
      model.OverlappedForwardBackward(b, Matrix<double>(), &ctx_b, Matrix<double>(), &ctx_a);
  EXPECT_EQ(dx_a.size(), 0);  // the first stage has no input gradient
  model.BackwardInput(Matrix<double>(), &ctx_b);
  model.BackwardWeight(&ctx_a);
  model.BackwardWeight(&ctx_b);
  const std::vector<Matrix<double>> overlapped = test_util::Grads(model.Params());

  ZeroGrads(model.Params());
  for (const MicroBatch* batch : {&a, &b}) {
    ModelStage<double>::Context ctx;
    const double loss = model.Forward(*batch, Matrix<double>(), &ctx)(0, 0);
    if (batch == &b) {
      EXPECT_EQ(loss, loss_b(0, 0));
    }
    model.BackwardInput(Matrix<double>(), &ctx);
    model.BackwardWeight(&ctx);
  }
  const std::vector<Param<double>*> params = model.Params();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(params[i]->grad == overlapped[i]) << params[i]->name;
  }
}

TEST(ModelStageTest, FloatModelAgreesWithDouble) {
  const ModelConfig config = TinyConfig();
  ModelStage<double> reference(config, StageRange::Whole(config));
  ModelStage<float> model(config, StageRange::Whole(config));
  InitParams(reference.Params(), config.init_std(), 7);
  InitParams(model.Params(), config.init_std(), 7);
  const MicroBatch batch = TestBatch(4);
  ModelStage<float>::Context ctx;
  const float cross_entropy = model.Forward(batch, Matrix<float>(), &ctx)(0, 0);
  EXPECT_NEAR(cross_entropy + ctx.aux_loss, Loss(reference, batch), 1e-5);
}

TEST(ModelStageTest, SgdStepsWithBiasUpdatesLowerTheLoss) {
  const ModelConfig config = TinyConfig();
  ModelStage<float> model(config, StageRange::Whole(config));
  InitParams(model.Params(), config.init_std(), 7);
  const MicroBatch batch = TestBatch(5);
  float first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    ModelStage<float>::Context ctx;
    last = model.Forward(batch, Matrix<float>(), &ctx)(0, 0);
    if (step == 0) first = last;
    DecoderBlock<float>& moe_block = model.blocks()[1];
    const std::vector<int64_t> loads = moe_block.MoeLoads(ctx.blocks[1]);
    model.BackwardInput(Matrix<float>(), &ctx);
    model.BackwardWeight(&ctx);
    for (Param<float>* p : model.Params()) {
      if (!p->trainable()) continue;
      p->value -= 0.5f * p->grad;
      p->grad.setZero();
    }
    moe_block.UpdateMoeBias(loads);
  }
  EXPECT_LT(last, 0.5f * first) << "first " << first << ", last " << last;
}

TEST(ModelStageTest, ValidateNamesTheBadField) {
  const ModelConfig config = TinyConfig();
  ModelStage<float> model(config, StageRange::Whole(config));
  MicroBatch batch = TestBatch(1);
  EXPECT_TRUE(model.Validate(batch).ok());
  const struct {
    void (*edit)(MicroBatch*);
    const char* field;
  } kCases[] = {
      {[](MicroBatch* b) { b->seq_len = 3; }, "MicroBatch.tokens"},
      {[](MicroBatch* b) { b->seq_len = 0; }, "MicroBatch.seq_len"},
      {[](MicroBatch* b) { b->seq_len = 17; }, "MicroBatch.seq_len"},
      {[](MicroBatch* b) { b->tokens[2] = 32; }, "MicroBatch.tokens"},
      {[](MicroBatch* b) { b->targets[0] = -2; }, "MicroBatch.targets"},
      {[](MicroBatch* b) { b->targets.pop_back(); }, "MicroBatch.targets"},
  };
  for (const auto& c : kCases) {
    MicroBatch bad = batch;
    c.edit(&bad);
    const absl::Status status = model.Validate(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(std::string(status.message()).find(c.field), std::string::npos) << status;
  }
  // A middle stage reads neither tokens nor targets.
  ModelStage<float> middle(config, {0, 1, false, false});
  batch.tokens[2] = 32;
  batch.targets.clear();
  EXPECT_TRUE(middle.Validate(batch).ok());
}

}  // namespace
}  // namespace model
