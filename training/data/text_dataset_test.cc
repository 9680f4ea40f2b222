#include "training/data/text_dataset.h"

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace training::data {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<tokenizer::Tokenizer> Tiny() {
  return *tokenizer::Tokenizer::FromFile("model/tokenizer/testdata/tiny_tokenizer.json");
}

TextDataOptions Options() {
  TextDataOptions options;
  options.corpus = {"model/tokenizer/testdata/corpus"};
  options.cache_path = std::string(::testing::TempDir()) + "/text_dataset.tokens";
  options.validation_fraction = 0.1;
  options.batcher = {.seq_len = 16, .batch_size = 2, .seed = 3};
  return options;
}

TEST(TextDatasetTest, EndToEndWithCacheAndResume) {
  std::filesystem::remove(Options().cache_path);
  std::unique_ptr<tokenizer::Tokenizer> tok = Tiny();
  absl::StatusOr<TextData> first = LoadTextData(Options(), *tok);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->cache.reused);
  EXPECT_THAT(first->Summary(), HasSubstr("2 files"));
  EXPECT_GT(first->train_tokens, first->validation_tokens);
  absl::StatusOr<TextData> second = LoadTextData(Options(), *tok);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->cache.reused);
  EXPECT_THAT(second->Summary(), HasSubstr("reused the token cache"));
  // Batches decode to corpus text, and a restored batcher continues identically.
  std::vector<int32_t> a, b;
  for (int i = 0; i < 5; ++i) first->train.Next(&a);
  ASSERT_TRUE(second->train.Restore(first->train.state()).ok());
  for (int i = 0; i < 5; ++i) {
    first->train.Next(&a);
    second->train.Next(&b);
    EXPECT_EQ(a, b);
  }
  absl::StatusOr<std::string> text = tok->Decode(a);
  ASSERT_TRUE(text.ok());
  EXPECT_FALSE(text->empty());
}

TEST(TextDatasetTest, OneLineErrors) {
  std::unique_ptr<tokenizer::Tokenizer> tok = Tiny();
  TextDataOptions options = Options();
  options.batcher.seq_len = 100000;
  EXPECT_THAT(std::string(LoadTextData(options, *tok).status().message()),
              HasSubstr("model/tokenizer/testdata/corpus: the corpus is too small"));
  options = Options();
  options.corpus = {"/no/such/corpus"};
  EXPECT_THAT(std::string(LoadTextData(options, *tok).status().message()),
              HasSubstr("/no/such/corpus: no such file"));
  options = Options();
  options.validation_fraction = 1.5;
  EXPECT_FALSE(LoadTextData(options, *tok).ok());
}

}  // namespace
}  // namespace training::data
