#include "training/data/corpus.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace training::data {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class CorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "sub");
  }
  std::string Write(const std::string& name, const std::string& contents) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << contents;
    return path.string();
  }
  fs::path dir_;
};

TEST_F(CorpusTest, FoldersSkipNonTextAndDuplicates) {
  Write("a.txt", "first\n%\nsecond\n%\n");
  Write("a.dat", std::string("\0\1\2\3", 4));
  Write("sub/b.jsonl", "{\"text\": \"third\"}\n\n{\"text\": \"fourth\", \"id\": 1}\n");
  Write("latin1.txt", "caf\xe9");
  Write(".hidden", "ignored");
  fs::create_symlink(dir_ / "a.txt", dir_ / "a.u8");
  absl::StatusOr<CorpusFiles> files = ListCorpus({dir_.string()});
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->files.size(), 2u);
  EXPECT_EQ(files->skipped_not_text, 2);
  EXPECT_EQ(files->skipped_duplicates, 1);
  EXPECT_GT(files->files[0].mtime_ns, 0);
  absl::StatusOr<Corpus> corpus = ReadCorpus(*files);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  ASSERT_EQ(corpus->documents.size(), 4u);
  EXPECT_EQ(corpus->documents[0].text, "first\n");
  EXPECT_EQ(corpus->documents[1].text, "second\n");
  EXPECT_EQ(corpus->documents[2].text, "third");
  EXPECT_EQ(corpus->documents[3].source, 1);
}

TEST_F(CorpusTest, SniffsTheFirst64KiBThenChecksTheRestWhenRead) {
  // 65535 ASCII bytes, then a 3-byte character cut by the sniff window: still text.
  Write("cut.txt", std::string(65535, 'a') + "\xe4\xb8\xad rest");
  // Text for 64 KiB, then a NUL: listed, but reading it fails naming it.
  Write("late.txt", std::string(70000, 'b') + std::string("\0", 1));
  absl::StatusOr<CorpusFiles> files = ListCorpus({dir_.string()});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(files->files.size(), 2u);
  EXPECT_EQ(files->skipped_not_text, 0);
  absl::StatusOr<Corpus> corpus = ReadCorpus(*files);
  EXPECT_THAT(std::string(corpus.status().message()), HasSubstr("late.txt: binary"));
}

TEST_F(CorpusTest, Globs) {
  Write("x1.txt", "one");
  Write("x2.txt", "two");
  Write("y.txt", "three");
  absl::StatusOr<CorpusFiles> files = ListCorpus({(dir_ / "x*.txt").string()});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(files->files.size(), 2u);
  EXPECT_EQ(ListCorpus({(dir_ / "z*.txt").string()}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CorpusTest, BadInputIsOneLineNamingTheFile) {
  const std::string binary = Write("bin.txt", std::string("a\0b", 3));
  const std::string latin1 = Write("latin1.txt", "caf\xe9");
  const std::string jsonl = Write("bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": 1}\n");
  const std::string empty = Write("empty.txt", "%\n%\n");
  auto error = [](const std::string& spec) {
    absl::StatusOr<CorpusFiles> files = ListCorpus({spec});
    if (!files.ok()) return std::string(files.status().message());
    absl::StatusOr<Corpus> corpus = ReadCorpus(*files);
    EXPECT_FALSE(corpus.ok());
    return std::string(corpus.status().message());
  };
  EXPECT_THAT(error(binary), HasSubstr("bin.txt: binary"));
  EXPECT_THAT(error(latin1), HasSubstr("latin1.txt: not valid UTF-8 (at byte 3)"));
  EXPECT_THAT(error(jsonl), HasSubstr("bad.jsonl:2: expected a JSON object"));
  EXPECT_THAT(error(empty), HasSubstr("no document"));
  EXPECT_THAT(error((dir_ / "missing").string()), HasSubstr("missing: no such file"));
  fs::create_directories(dir_ / "only_binary");
  Write("only_binary/x.dat", std::string("\0", 1));
  EXPECT_THAT(error((dir_ / "only_binary").string()), HasSubstr("no text file (1 non-text"));
  EXPECT_FALSE(ListCorpus({}).ok());
}

TEST(SplitTest, StableHashAndFraction) {
  // Fixed values: the split must never move between runs, machines or builds.
  EXPECT_EQ(DocumentHash(""), DocumentHash(""));
  EXPECT_NE(DocumentHash("a"), DocumentHash("b"));
  EXPECT_EQ(DocumentHash("hello"), 0x16fe05a1c75bcd0full) << std::hex << DocumentHash("hello");
  int validation = 0;
  for (int i = 0; i < 10000; ++i) {
    validation += IsValidationDocument(DocumentHash("doc " + std::to_string(i)), 0.1);
  }
  EXPECT_NEAR(validation, 1000, 100);
  EXPECT_FALSE(IsValidationDocument(~0ull, 0.0));
  EXPECT_TRUE(IsValidationDocument(~0ull, 1.0));
}

}  // namespace
}  // namespace training::data
