#include "model/tokenizer/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace tokenizer {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";

TEST(Utf8Test, Validation) {
  size_t bad = 99;
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("中文 😀 é"));
  EXPECT_FALSE(IsValidUtf8("ab\xC0\x80", &bad));  // overlong
  EXPECT_EQ(bad, 2u);
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xE4\xB8"));          // cut
  EXPECT_FALSE(IsValidUtf8("\x80"));
}

TEST(Utf8Test, LossyReplacesMaximalSubparts) {
  std::string out;
  AppendLossyUtf8("a\xE4\xB8z\xFF\xF0\x9F\x98\x80", &out);
  EXPECT_EQ(out, std::string("a") + kReplacement + "z" + kReplacement + "😀");
  out.clear();
  AppendLossyUtf8("\xC0\x80", &out);  // two invalid bytes, two replacements
  EXPECT_EQ(out, std::string(kReplacement) + kReplacement);
}

TEST(Utf8Test, CompletePrefixHoldsBackOnlyCompletableTails) {
  EXPECT_EQ(CompletePrefixLength("abc"), 3u);
  EXPECT_EQ(CompletePrefixLength("ab\xF0\x9F\x98"), 2u);  // 3 of 4 bytes of an emoji
  EXPECT_EQ(CompletePrefixLength("ab\xE4"), 2u);
  EXPECT_EQ(CompletePrefixLength("ab\xE4\xB8\xAD"), 5u);
  EXPECT_EQ(CompletePrefixLength("ab\xFF"), 3u);      // invalid: not held back
  EXPECT_EQ(CompletePrefixLength("ab\xE4\x41"), 4u);  // broken: not held back
  EXPECT_EQ(CompletePrefixLength(""), 0u);
}

TEST(Utf8Test, CodePoints) {
  std::string s;
  for (char32_t cp : {U'A', U'é', U'中', U'😀'}) AppendCodePoint(cp, &s);
  EXPECT_EQ(s, "Aé中😀");
  size_t i = 0;
  EXPECT_EQ(NextCodePoint(s, &i), U'A');
  EXPECT_EQ(NextCodePoint(s, &i), U'é');
  EXPECT_EQ(NextCodePoint(s, &i), U'中');
  EXPECT_EQ(NextCodePoint(s, &i), U'😀');
  EXPECT_EQ(i, s.size());
}

}  // namespace
}  // namespace tokenizer
