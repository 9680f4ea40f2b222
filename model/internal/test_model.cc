#include "model/internal/test_model.h"

#include "gtest/gtest.h"
#include "model/config.h"
#include "model/cross_entropy.h"
#include "model/init.h"

namespace model::test_util {

ModelConfig TestConfig(const std::string& name) {
  absl::StatusOr<ModelConfig> config = LoadConfig("model/testdata/" + name + ".textproto");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : ModelConfig();
}

MicroBatch TestBatch(int seed) {
  MicroBatch batch;
  batch.seq_len = 4;
  Rng rng(seed);
  for (int t = 0; t < 8; ++t) batch.tokens.push_back(static_cast<int32_t>(rng.Next() % 32));
  for (int t = 0; t < 8; ++t) {
    batch.targets.push_back(t % 4 == 3 ? kIgnoreTarget : batch.tokens[t + 1]);
  }
  return batch;
}

}  // namespace model::test_util
