// init_checkpoint: writes a checkpoint with seeded weights in the training binary's layout, for
// serving tests and demos without training. The vocabulary is sized from the tokenizer.
//
//   bazel run //tools:init_checkpoint -- --config=$PWD/model/testdata/tiny_mla.textproto
//       --tokenizer=$PWD/model/tokenizer/testdata/tiny_tokenizer.json --output=/tmp/m --seed=1
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "model/config.h"
#include "model/init.h"
#include "model/model_stage.h"
#include "model/tokenizer/tokenizer.h"
#include "serving/model_dir.h"

ABSL_FLAG(std::string, config, "", "Model config, a text-format ModelConfig (required).");
ABSL_FLAG(std::string, tokenizer, "", "The tokenizer.json to ship with the model (required).");
ABSL_FLAG(std::string, output, "", "Checkpoint directory to write (required; created).");
ABSL_FLAG(int64_t, seed, 1, "Seed of the weights (model::InitParams; same seed, same weights).");
ABSL_FLAG(double, init_std, 0,
          "Standard deviation of the weight matrices; 0 takes the config's init_std.");

namespace {

absl::Status Run() {
  const std::string config_path = absl::GetFlag(FLAGS_config);
  const std::string tokenizer_path = absl::GetFlag(FLAGS_tokenizer);
  const std::string output = absl::GetFlag(FLAGS_output);
  if (config_path.empty()) return absl::InvalidArgumentError("--config is required (see --help)");
  if (tokenizer_path.empty()) {
    return absl::InvalidArgumentError("--tokenizer is required (see --help)");
  }
  if (output.empty()) return absl::InvalidArgumentError("--output is required (see --help)");
  if (absl::GetFlag(FLAGS_init_std) < 0) {
    return absl::InvalidArgumentError("--init_std must not be negative");
  }
  ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadConfig(config_path));
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok,
                   tokenizer::Tokenizer::FromFile(tokenizer_path));
  config.set_vocab_size(tok->vocab_size());
  RETURN_IF_ERROR(model::ValidateConfig(config));
  std::ifstream in(tokenizer_path, std::ios::binary);
  std::stringstream json;
  json << in.rdbuf();
  model::ModelStage<float> stage(config, model::StageRange::Whole(config));
  const double std =
      absl::GetFlag(FLAGS_init_std) > 0 ? absl::GetFlag(FLAGS_init_std) : config.init_std();
  model::InitParams(stage.Params(), std, static_cast<uint64_t>(absl::GetFlag(FLAGS_seed)));
  RETURN_IF_ERROR(serving::WriteModelDir(output, config, stage.Params(), json.str()));
  int64_t count = 0;
  for (model::Param<float>* p : stage.Params()) count += p->value.size();
  std::printf("init_checkpoint: wrote %s (%s, vocab %d, %lld parameters, seed %lld)\n",
              output.c_str(), config.name().c_str(), config.vocab_size(),
              static_cast<long long>(count), static_cast<long long>(absl::GetFlag(FLAGS_seed)));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  core::ParseFlagsOrExit(
      argc, argv,
      "Writes a checkpoint with seeded weights in the training binary's layout\n"
      "(model-stage0-ep0.safetensors, model.safetensors.index.json, model.textproto,\n"
      "tokenizer.json), the vocabulary sized from the tokenizer; //serving:server loads it.\n"
      "Usage: init_checkpoint --config=MODEL.textproto --tokenizer=tokenizer.json --output=DIR\n"
      "       [--seed=1] [--init_std=0]");
  const absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "init_checkpoint: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
