#include "serving/test_models.h"

#include <memory>

#include "core/check.h"
#include "model/config.h"
#include "model/init.h"

namespace serving {

LoadedModel SeededTinyModel(const std::string& config_path, int64_t max_seq_len, uint64_t seed) {
  LoadedModel m;
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tokenizer =
      tokenizer::Tokenizer::FromFile("model/tokenizer/testdata/tiny_tokenizer.json");
  DSMOE_CHECK(tokenizer.ok(), tokenizer.status().ToString());
  m.tokenizer = *std::move(tokenizer);
  absl::StatusOr<model::ModelConfig> config = model::LoadConfig(config_path);
  DSMOE_CHECK(config.ok(), config.status().ToString());
  m.config = *std::move(config);
  m.config.set_vocab_size(m.tokenizer->vocab_size());
  m.config.set_max_seq_len(max_seq_len);
  m.model =
      std::make_unique<model::ModelStage<float>>(m.config, model::StageRange::Whole(m.config));
  model::InitParams(m.model->Params(), 0.2, seed);
  return m;
}

std::vector<int32_t> SeededPrompt(int64_t n, uint64_t seed) {
  model::Rng rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = static_cast<int32_t>(100 + rng.Next() % 400);
  return ids;
}

}  // namespace serving
