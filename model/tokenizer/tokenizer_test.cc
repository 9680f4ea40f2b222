#include "model/tokenizer/tokenizer.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/tokenizer/read_file.h"
#include "nlohmann/json.hpp"

namespace tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kTiny[] = "model/tokenizer/testdata/tiny_tokenizer.json";

nlohmann::json TinyJson() {
  absl::StatusOr<std::string> text = ReadFile(kTiny);
  EXPECT_TRUE(text.ok()) << text.status();
  return nlohmann::json::parse(*text);
}

std::unique_ptr<Tokenizer> Load(const nlohmann::json& json) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJson(json.dump());
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

std::string LoadError(const nlohmann::json& json) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJson(json.dump());
  EXPECT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(t.status().message());
}

TEST(TokenizerTest, RoundTripsVariedText) {
  std::unique_ptr<Tokenizer> t = Load(TinyJson());
  for (const std::string text :
       {"Hello, world!", "  spaces   and\ttabs\n\n", "中文和日本語のテキスト",
        "emoji 😀👩‍👩‍👧", "digits 1234567", "", "\x01\x7f control",
        "<｜User｜>hi<｜Assistant｜>"}) {
    absl::StatusOr<std::vector<int32_t>> ids = t->Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    absl::StatusOr<std::string> back = t->Decode(*ids);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, text);
  }
}

TEST(TokenizerTest, SpecialTokensAreMatchedWholeAndSkippable) {
  std::unique_ptr<Tokenizer> t = Load(TinyJson());
  absl::StatusOr<std::vector<int32_t>> ids =
      t->Encode("<｜begin▁of▁sentence｜>a<｜end▁of▁sentence｜>");
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->size(), 3u);
  EXPECT_EQ(ids->front(), 0);
  EXPECT_EQ(ids->back(), 1);
  EXPECT_EQ(*t->Decode(*ids, /*skip_special_tokens=*/true), "a");
  EXPECT_EQ(t->bos_id(), 0);
  EXPECT_EQ(t->eos_id(), 1);
  EXPECT_EQ(t->TokenToId("<｜User｜>"), 3);
  EXPECT_EQ(t->IdToToken(3), "<｜User｜>");
  EXPECT_EQ(t->vocab_size(), 600);
  EXPECT_TRUE(t->IsSpecial(2));
  EXPECT_FALSE(t->IsSpecial(300));
}

TEST(TokenizerTest, MergesByRank) {
  // Bytes a, b, c and merges "b c" (rank 0) before "a b" (rank 1): "abc" -> a, bc.
  nlohmann::json j = TinyJson();
  nlohmann::json& model = j["model"];
  model["vocab"] = {{"a", 0}, {"b", 1}, {"c", 2}, {"bc", 3}, {"ab", 4}};
  model["merges"] = nlohmann::json::array({"b c", "a b"});
  j["added_tokens"] = nlohmann::json::array();
  std::unique_ptr<Tokenizer> t = Load(j);
  EXPECT_THAT(*t->Encode("abc"), ElementsAre(0, 3));
  EXPECT_THAT(*t->Encode("abab"), ElementsAre(4, 4));
  // New-style merges ([left, right]) mean the same.
  model["merges"] =
      nlohmann::json::array({nlohmann::json::array({"b", "c"}), nlohmann::json::array({"a", "b"})});
  EXPECT_THAT(*Load(j)->Encode("abc"), ElementsAre(0, 3));
  // ignore_merges: a word in the vocabulary is one token even if merges would not build it.
  model["vocab"]["abc"] = 5;
  model["merges"] = nlohmann::json::array({"b c", "a b"});
  model["ignore_merges"] = true;
  EXPECT_THAT(*Load(j)->Encode("abc"), ElementsAre(5));
}

TEST(TokenizerTest, AddedTokenFlags) {
  nlohmann::json j = TinyJson();
  j["added_tokens"] = nlohmann::json::array(
      {{{"id", 700}, {"content", "<L>"}, {"lstrip", true}, {"special", true}},
       {{"id", 701}, {"content", "<R>"}, {"rstrip", true}, {"special", true}},
       {{"id", 702}, {"content", "cat"}, {"single_word", true}, {"special", false}}});
  std::unique_ptr<Tokenizer> t = Load(j);
  // lstrip swallows the spaces on the left, rstrip on the right.
  EXPECT_EQ(*t->Decode(*t->Encode("x   <L>y")), "x<L>y");
  EXPECT_EQ(*t->Decode(*t->Encode("x<R>   y")), "x<R>y");
  std::vector<int32_t> ids = *t->Encode("a cat");
  EXPECT_EQ(ids.back(), 702);
  ids = *t->Encode("concatenate");
  EXPECT_TRUE(std::find(ids.begin(), ids.end(), 702) == ids.end());
}

TEST(TokenizerTest, TemplateProcessingAddsBos) {
  nlohmann::json j = TinyJson();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single",
                          {{{"SpecialToken", {{"id", "<｜begin▁of▁sentence｜>"}, {"type_id", 0}}}},
                           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                         {"pair", nlohmann::json::array()},
                         {"special_tokens",
                          {{"<｜begin▁of▁sentence｜>",
                            {{"id", "<｜begin▁of▁sentence｜>"},
                             {"ids", {0}},
                             {"tokens", {"<｜begin▁of▁sentence｜>"}}}}}}};
  std::unique_ptr<Tokenizer> t = Load(j);
  EXPECT_EQ(t->Encode("a", true)->front(), 0);
  EXPECT_NE(t->Encode("a", false)->front(), 0);
}

TEST(TokenizerTest, NormalizerNfkc) {
  nlohmann::json j = TinyJson();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}};
  std::unique_ptr<Tokenizer> t = Load(j);
  // NFKC folds the full-width letters and the ligature.
  EXPECT_EQ(*t->Decode(*t->Encode("ＡＢＣ ﬁ")), "ABC fi");
}

TEST(TokenizerTest, SplitBehaviors) {
  nlohmann::json j = TinyJson();
  auto pieces = [&](const char* behavior, bool invert) {
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"String", "-"}}},
           {"behavior", behavior},
           {"invert", invert}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    std::vector<std::string> out;
    EXPECT_TRUE(Load(j)->PreTokenize("a-b--c", &out).ok());
    return out;
  };
  EXPECT_THAT(pieces("Removed", false), ElementsAre("a", "b", "c"));
  EXPECT_THAT(pieces("Isolated", false), ElementsAre("a", "-", "b", "-", "-", "c"));
  EXPECT_THAT(pieces("MergedWithPrevious", false), ElementsAre("a-", "b-", "-", "c"));
  EXPECT_THAT(pieces("MergedWithNext", false), ElementsAre("a", "-b", "-", "-c"));
  EXPECT_THAT(pieces("Contiguous", false), ElementsAre("a", "-", "b", "--", "c"));
  EXPECT_THAT(pieces("Removed", true), ElementsAre("-", "-", "-"));
}

TEST(TokenizerTest, ByteLevelWithRegexAndPrefixSpace) {
  nlohmann::json j = TinyJson();
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  std::vector<std::string> out;
  ASSERT_TRUE(Load(j)->PreTokenize("Hello world's 42!", &out).ok());
  EXPECT_THAT(out, ElementsAre(" Hello", " world", "'s", " 42", "!"));
  j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
  EXPECT_THAT(LoadError(j), HasSubstr("no ByteLevel"));
}

TEST(TokenizerTest, UnsupportedComponentsNameTheirPath) {
  nlohmann::json j = TinyJson();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}};
  EXPECT_THAT(LoadError(j), HasSubstr("normalizer.normalizers[0]"));
  j = TinyJson();
  j["pre_tokenizer"]["pretokenizers"][1] = {{"type", "Whitespace"}};
  EXPECT_THAT(LoadError(j), HasSubstr("pre_tokenizer.pretokenizers[1]: pre-tokenizer type"));
  j = TinyJson();
  j["model"]["type"] = "WordPiece";
  EXPECT_THAT(LoadError(j), HasSubstr("model.type"));
  j = TinyJson();
  j["decoder"] = {{"type", "Metaspace"}};
  EXPECT_THAT(LoadError(j), HasSubstr("decoder"));
  j = TinyJson();
  j["post_processor"] = {{"type", "BertProcessing"}};
  EXPECT_THAT(LoadError(j), HasSubstr("post_processor"));
  j = TinyJson();
  j["model"]["dropout"] = 0.1;
  EXPECT_THAT(LoadError(j), HasSubstr("model.dropout"));
  j = TinyJson();
  j["model"]["merges"].push_back("zz qq");
  EXPECT_THAT(LoadError(j), HasSubstr("model.merges["));
  j = TinyJson();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  EXPECT_THAT(LoadError(j), HasSubstr("pre_tokenizer.pretokenizers[0].pattern"));
  EXPECT_FALSE(Tokenizer::FromJson("not json").ok());
}

TEST(TokenizerTest, BadInputAndIds) {
  std::unique_ptr<Tokenizer> t = Load(TinyJson());
  absl::StatusOr<std::vector<int32_t>> ids = t->Encode("ok\xff");
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ids.status().message()), HasSubstr("byte offset 2"));
  EXPECT_FALSE(t->Decode({600}).ok());
  EXPECT_FALSE(t->Decode({-1}).ok());
  absl::StatusOr<std::unique_ptr<Tokenizer>> missing = Tokenizer::FromFile("/no/such/file.json");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(TokenizerTest, DecodeReplacesInvalidUtf8) {
  std::unique_ptr<Tokenizer> t = Load(TinyJson());
  // The byte tokens of the first two bytes of "😀" (F0 9F 98 80) alone.
  const int32_t f0 = *t->TokenToId("ð");
  const int32_t x9f = *t->TokenToId("Ł");
  EXPECT_EQ(*t->Decode({f0, x9f}), "\xEF\xBF\xBD");
}

// Texts that take every path of the encoder: cached words, words over 64 bytes and words of
// more than 7 ids (never cached), added tokens, scripts and emoji, runs of spaces.
std::vector<std::string> VariedTexts(int count) {
  std::vector<std::string> texts;
  for (int i = 0; i < count; ++i) {
    texts.push_back("document " + std::to_string(i * 7919) +
                    " 中文 the pipeline 😀👩‍👩‍👧 " + std::string(i % 13, ' ') +
                    std::string(1 + i % 97, "xyzq"[i % 4]) + (i % 5 == 0 ? "<｜User｜>" : " ") +
                    "end");
  }
  return texts;
}

TEST(TokenizerTest, EncodesFromManyThreadsAlike) {
  const std::vector<std::string> texts = VariedTexts(300);
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& text : texts) expected.push_back(*Load(TinyJson())->Encode(text));

  // Eight threads encode all texts at once with one tokenizer, each in its own order, so that
  // they run together through every path (a shared cache or scratch buffer would mix them up).
  std::unique_ptr<Tokenizer> t = Load(TinyJson());
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      for (int round = 0; round < 10; ++round) {
        for (size_t n = 0; n < texts.size(); ++n) {
          const size_t i = (n * (2 * k + 1) + static_cast<size_t>(k) * 37) % texts.size();
          const absl::StatusOr<std::vector<int32_t>> ids = t->Encode(texts[i]);
          if (!ids.ok() || *ids != expected[i]) ++mismatches;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
  // Once more from this thread, from warm caches.
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(*t->Encode(texts[i]), expected[i]) << i;
}

TEST(TokenizerTest, ResultsSurviveAFullWordCache) {
  std::unique_ptr<Tokenizer> t = Load(TinyJson());
  const std::string sample = "the same words, the same ids: 42 中文 😀 the same";
  const std::vector<int32_t> expected = *t->Encode(sample);
  // 70,000 distinct words: more than the word cache holds, so it is emptied on the way.
  std::string many;
  for (int i = 0; i < 70000; ++i) {
    many += ' ';
    for (int n = i; n > 0 || many.back() == ' '; n /= 26) many += static_cast<char>('a' + n % 26);
  }
  std::vector<std::string> pieces;
  ASSERT_TRUE(t->PreTokenize(many, &pieces).ok());
  ASSERT_EQ(pieces.size(), 70000u);  // " word": all distinct
  const absl::StatusOr<std::vector<int32_t>> first = t->Encode(many);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*t->Encode(sample), expected);
  EXPECT_EQ(*t->Encode(many), *first);
  EXPECT_EQ(*t->Decode(*first), many);
}

TEST(TokenizerTest, TokenizersDoNotShareCachedIds) {
  // Two tokenizers that split the same words differently, used alternately by one thread.
  nlohmann::json j = TinyJson();
  j["model"]["merges"] = nlohmann::json::array();
  std::unique_ptr<Tokenizer> merging = Load(TinyJson());
  std::unique_ptr<Tokenizer> bytes = Load(j);
  const std::string text = "the pipeline encodes the text";
  const std::vector<int32_t> merged = *merging->Encode(text);
  ASSERT_LT(merged.size(), text.size());
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(bytes->Encode(text)->size(), text.size());
    EXPECT_EQ(*merging->Encode(text), merged);
  }
}

TEST(IncrementalDecoderTest, EmitsOnlyCompleteCharacters) {
  std::unique_ptr<Tokenizer> t = Load(TinyJson());
  const std::string text = "a😀b中文 end<｜end▁of▁sentence｜>";
  const std::vector<int32_t> ids = *t->Encode(text);
  IncrementalDecoder decoder(*t);
  std::string streamed;
  for (int32_t id : ids) {
    absl::StatusOr<std::string> piece = decoder.Add(id);
    ASSERT_TRUE(piece.ok());
    // Every emitted piece is valid UTF-8 on its own.
    EXPECT_EQ(*t->Decode(*t->Encode(*piece)), *piece);
    streamed += *piece;
  }
  streamed += decoder.Flush();
  EXPECT_EQ(streamed, text);
  // The first byte of an emoji alone is held back, then flushed as U+FFFD.
  IncrementalDecoder partial(*t);
  EXPECT_EQ(*partial.Add(*t->TokenToId("ð")), "");
  EXPECT_EQ(partial.Flush(), "\xEF\xBF\xBD");
  EXPECT_FALSE(partial.Add(12345).ok());
  // A byte that cannot start a character is not held back.
  EXPECT_EQ(*partial.Add(*t->TokenToId("ÿ")), "\xEF\xBF\xBD");
  IncrementalDecoder skipping(*t, /*skip_special_tokens=*/true);
  EXPECT_EQ(*skipping.Add(1), "");
}

}  // namespace
}  // namespace tokenizer
