#include "serving/model_dir.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "model/config.h"
#include "model/init.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace serving {
namespace {

namespace fs = std::filesystem;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A checkpoint as the trainer writes it (parameters split over stage and expert-rank files, an
// index, model.textproto, tokenizer.json) under OUT/checkpoints/step-N loads into a whole model.
TEST(ModelDirTest, LoadsTheTrainersLayout) {
  const std::string out = ::testing::TempDir() + "/run";
  const std::string step = out + "/checkpoints/step-00000007";
  fs::create_directories(step);
  model::ModelConfig config = *model::LoadConfig("serving/testdata/tiny_mla.textproto");
  const std::string tok = "model/tokenizer/testdata/tiny_tokenizer.json";
  config.set_vocab_size(600);
  model::ModelStage<float> stage(config, model::StageRange::Whole(config));
  model::InitParams(stage.Params(), 0.1, 3);
  // Split the parameters over four files, round robin.
  std::vector<std::vector<std::pair<std::string, core::TensorView>>> files(4);
  nlohmann::json map;
  int i = 0;
  for (model::Param<float>* p : stage.Params()) {
    const int f = i++ % 4;
    const std::string name =
        "model-stage" + std::to_string(f / 2) + "-ep" + std::to_string(f % 2) + ".safetensors";
    files[f].emplace_back(
        p->name, core::TensorView(p->value.data(), core::DType::kF32, core::Shape(p->shape())));
    map[p->name] = name;
  }
  for (int f = 0; f < 4; ++f) {
    ASSERT_TRUE(model::WriteSafetensors(step + "/model-stage" + std::to_string(f / 2) + "-ep" +
                                            std::to_string(f % 2) + ".safetensors",
                                        files[f])
                    .ok());
  }
  std::ofstream(step + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", map}};
  {
    std::string text;
    google::protobuf::TextFormat::PrintToString(config, &text);
    std::ofstream(step + "/model.textproto") << text;
  }
  std::ofstream(step + "/tokenizer.json") << Read(tok);
  fs::create_directories(out + "/checkpoints/step-00000003");  // older and incomplete: ignored

  EXPECT_EQ(*ResolveModelDir(out), step);
  EXPECT_EQ(*ResolveModelDir(out + "/checkpoints"), step);
  EXPECT_EQ(*ResolveModelDir(step), step);
  absl::StatusOr<LoadedModel> loaded = LoadModelDir(out);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  std::vector<model::Param<float>*> want = stage.Params();
  std::vector<model::Param<float>*> got = loaded->model->Params();
  ASSERT_EQ(want.size(), got.size());
  for (size_t k = 0; k < want.size(); ++k) EXPECT_TRUE(want[k]->value == got[k]->value);
  EXPECT_EQ(loaded->tokenizer->vocab_size(), 600);

  // WriteModelDir round-trips.
  ASSERT_TRUE(WriteModelDir(out + "/copy", config, stage.Params(), Read(tok)).ok());
  absl::StatusOr<LoadedModel> copy = LoadModelDir(out + "/copy");
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_TRUE(copy->model->Params()[3]->value == want[3]->value);

  // Errors name the path.
  EXPECT_EQ(LoadModelDir("/nonexistent").status().code(), absl::StatusCode::kNotFound);
  fs::remove(step + "/model-stage1-ep1.safetensors");
  const absl::Status missing = LoadModelDir(out).status();
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find(step), std::string::npos) << missing;
}

}  // namespace
}  // namespace serving
