#include "model/tokenizer/bpe_trainer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tokenizer {
namespace {

std::vector<std::string> Texts() {
  return {"the cat sat on the mat",
          "the dog sat on the log",
          "a cat and a dog",
          "中文 中文 中文",
          "12345 12345",
          "the the the the"};
}

std::string Train(const std::vector<std::string>& texts, int vocab_size) {
  absl::StatusOr<std::unique_ptr<BpeTrainer>> trainer =
      BpeTrainer::Create({.vocab_size = vocab_size});
  EXPECT_TRUE(trainer.ok());
  for (const std::string& text : texts) EXPECT_TRUE((*trainer)->AddText(text).ok());
  absl::StatusOr<std::string> json = (*trainer)->Train();
  EXPECT_TRUE(json.ok());
  return *json;
}

TEST(BpeTrainerTest, DeterministicAndOrderIndependent) {
  std::vector<std::string> texts = Texts();
  const std::string first = Train(texts, 300);
  std::reverse(texts.begin(), texts.end());
  EXPECT_EQ(Train(texts, 300), first);
}

TEST(BpeTrainerTest, LearnsFrequentPairsAndLoads) {
  const std::string json = Train(Texts(), 300);
  const nlohmann::json j = nlohmann::json::parse(json);
  const auto& merges = j["model"]["merges"];
  ASSERT_FALSE(merges.empty());
  // "Ġ t" / "t h" are among the first: "the" is the most frequent word.
  EXPECT_TRUE(merges[0] == "Ġ t" || merges[0] == "t h" || merges[0] == "h e") << merges[0];
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJson(json);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<std::vector<int32_t>> ids = (*t)->Encode("the cat");
  ASSERT_TRUE(ids.ok());
  EXPECT_LT(ids->size(), 7u);  // fewer tokens than bytes
  EXPECT_EQ(*(*t)->Decode(*ids), "the cat");
  EXPECT_EQ((*t)->vocab_size(), 261 + static_cast<int>(merges.size()));
  // The special tokens are DeepSeek-V3's, and stay whole.
  EXPECT_EQ((*t)->Encode("<｜User｜>")->size(), 1u);
}

TEST(BpeTrainerTest, StopsAtVocabSizeAndRejectsBadOptions) {
  std::vector<std::string> texts;
  for (int i = 0; i < 50; ++i) texts.push_back("abcdefghij klmnopqrst uvwxyz " + std::to_string(i));
  const nlohmann::json j = nlohmann::json::parse(Train(texts, 270));
  EXPECT_EQ(j["model"]["merges"].size(), 9u);
  EXPECT_FALSE(BpeTrainer::Create({.vocab_size = 100}).ok());
  absl::StatusOr<std::unique_ptr<BpeTrainer>> trainer = BpeTrainer::Create({});
  EXPECT_FALSE((*trainer)->AddText("bad \xff").ok());
}

}  // namespace
}  // namespace tokenizer
