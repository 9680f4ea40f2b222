#include "training/data/token_cache.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace training::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class TokenCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "corpus");
    Write("corpus/a.txt", "The first document.\n%\nThe second, with 中文 and 😀.\n");
    Write("corpus/b.jsonl", "{\"text\": \"third\"}\n{\"text\": \"fourth document here\"}\n");
    absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> t =
        tokenizer::Tokenizer::FromFile("model/tokenizer/testdata/tiny_tokenizer.json");
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
    cache_ = (dir_ / "cache.tokens").string();
  }
  void Write(const std::string& name, const std::string& contents) {
    std::ofstream(dir_ / name, std::ios::binary) << contents;
  }
  CorpusFiles Files() {
    absl::StatusOr<CorpusFiles> files = ListCorpus({(dir_ / "corpus").string()});
    EXPECT_TRUE(files.ok()) << files.status();
    return *files;
  }
  TokenizedCorpus Load(CacheInfo* info) {
    absl::StatusOr<TokenizedCorpus> t = LoadOrTokenize(Files(), *tokenizer_, cache_, 2, info);
    EXPECT_TRUE(t.ok()) << t.status();
    return *t;
  }

  fs::path dir_;
  std::string cache_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
};

TEST_F(TokenCacheTest, TokenizesLikeEncodeAndReusesTheCache) {
  CacheInfo info;
  const TokenizedCorpus first = Load(&info);
  EXPECT_FALSE(info.reused);
  EXPECT_EQ(info.rebuilt_because, "no cache");
  ASSERT_EQ(first.num_documents(), 4);
  const std::vector<int32_t> third = *tokenizer_->Encode("third");
  EXPECT_EQ(std::vector<int32_t>(first.tokens.begin() + first.offsets[2],
                                 first.tokens.begin() + first.offsets[3]),
            third);
  EXPECT_EQ(first.hashes[2], DocumentHash("third"));
  const TokenizedCorpus second = Load(&info);
  EXPECT_TRUE(info.reused);
  EXPECT_EQ(second.tokens, first.tokens);
  EXPECT_EQ(second.offsets, first.offsets);
  EXPECT_EQ(second.hashes, first.hashes);
}

TEST_F(TokenCacheTest, ChangedInputRebuilds) {
  CacheInfo info;
  Load(&info);
  Write("corpus/b.jsonl", "{\"text\": \"changed\"}\n");
  const TokenizedCorpus changed = Load(&info);
  EXPECT_FALSE(info.reused);
  EXPECT_EQ(info.rebuilt_because, "sources or tokenizer changed");
  EXPECT_EQ(changed.num_documents(), 3);
  Write("corpus/c.txt", "new file");
  Load(&info);
  EXPECT_EQ(info.rebuilt_because, "sources or tokenizer changed");
  Load(&info);
  EXPECT_TRUE(info.reused);
}

TEST_F(TokenCacheTest, CorruptOrTruncatedCacheRebuilds) {
  CacheInfo info;
  const TokenizedCorpus good = Load(&info);
  const auto size = fs::file_size(cache_);
  fs::resize_file(cache_, size - 3);
  EXPECT_EQ(Load(&info).tokens, good.tokens);
  EXPECT_FALSE(info.reused);
  EXPECT_THAT(info.rebuilt_because, HasSubstr("corrupt cache: truncated"));
  {
    std::fstream f(cache_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size - 5));
    f.put('\x7f');
  }
  EXPECT_EQ(Load(&info).tokens, good.tokens);
  EXPECT_THAT(info.rebuilt_because, HasSubstr("checksum"));
  std::ofstream(cache_, std::ios::trunc) << "garbage";
  Load(&info);
  EXPECT_THAT(info.rebuilt_because, HasSubstr("bad magic"));
  Load(&info);
  EXPECT_TRUE(info.reused);
}

}  // namespace
}  // namespace training::data
