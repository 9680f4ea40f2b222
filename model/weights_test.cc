#include "model/weights.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "model/config.h"
#include "model/init.h"
#include "model/model_stage.h"
#include "model/safetensors.h"

namespace model {
namespace {

std::string TempPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

ModelConfig TinyConfig() {
  absl::StatusOr<ModelConfig> config = LoadConfig("model/testdata/tiny.textproto");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

MicroBatch TestBatch() {
  MicroBatch batch;
  batch.seq_len = 4;
  batch.tokens = {1, 5, 9, 2, 30, 7, 7, 0};
  batch.targets = {5, 9, 2, kIgnoreTarget, 7, 7, 0, kIgnoreTarget};
  return batch;
}

float Loss(const ModelStage<float>& model) {
  ModelStage<float>::Context ctx;
  return model.Forward(TestBatch(), Matrix<float>(), &ctx)(0, 0);
}

TEST(WeightsTest, SavedModelLoadsIntoAnotherWithIdenticalResults) {
  const ModelConfig config = TinyConfig();
  ModelStage<float> saved(config, StageRange::Whole(config));
  InitParams(saved.Params(), config.init_std(), 11);
  saved.Params()[0]->value(0, 0) = 0.125f;
  const std::string path = TempPath("tiny.safetensors");
  ASSERT_TRUE(SaveWeights(path, saved.Params(), {{"config", "tiny"}}).ok());

  ModelStage<float> loaded(config, StageRange::Whole(config));
  InitParams(loaded.Params(), config.init_std(), 12);
  ASSERT_TRUE(LoadWeights(path, loaded.Params()).ok());
  const std::vector<Param<float>*> a = saved.Params();
  const std::vector<Param<float>*> b = loaded.Params();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i]->value == b[i]->value) << a[i]->name;
  EXPECT_EQ(Loss(loaded), Loss(saved));

  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->tensors.at("model.norm.weight").shape(), core::Shape({16}));
  EXPECT_EQ(file->tensors.at("model.layers.1.mlp.experts.7.down_proj.weight").shape(),
            core::Shape({16, 8}));
  EXPECT_EQ(file->metadata.at("config"), "tiny");
}

TEST(WeightsTest, StageLoadsItsPartOfTheWholeModel) {
  const ModelConfig config = TinyConfig();
  ModelStage<float> whole(config, StageRange::Whole(config));
  InitParams(whole.Params(), config.init_std(), 11);
  const std::string path = TempPath("whole.safetensors");
  ASSERT_TRUE(SaveWeights(path, whole.Params()).ok());
  ModelStage<float> last(config, {1, 2, false, true});
  ASSERT_TRUE(LoadWeights(path, last.Params()).ok());
  EXPECT_TRUE(last.Params().back()->value == whole.Params().back()->value);
}

TEST(WeightsTest, MissingOrMisshapenTensorsLeaveParamsUntouched) {
  Param<float> a("a", 2, 3), b("b", 1, 4, ParamKind::kNormScale);
  a.value.setConstant(1);
  b.value.setConstant(2);
  const std::string path = TempPath("ab.safetensors");
  ASSERT_TRUE(SaveWeights(path, {&a}).ok());
  Param<float> a2("a", 2, 3), b2("b", 1, 4);
  EXPECT_EQ(LoadWeights(path, {&a2, &b2}).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(a2.value.isZero());
  Param<float> wrong("a", 3, 2);
  EXPECT_EQ(LoadWeights(path, {&wrong}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(WeightsTest, LoadsBFloat16) {
  core::Tensor t = core::Tensor::Zeros({2}, core::DType::kBF16);
  t.data<core::BFloat16>()[1] = core::ToBFloat16(-0.5f);
  const std::string path = TempPath("bf16.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"n", t.view()}}).ok());
  Param<float> n("n", 1, 2, ParamKind::kNormScale);
  ASSERT_TRUE(LoadWeights(path, {&n}).ok());
  EXPECT_EQ(n.value(0, 1), -0.5f);
}

}  // namespace
}  // namespace model
