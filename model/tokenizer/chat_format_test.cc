#include "model/tokenizer/chat_format.h"

#include "gtest/gtest.h"

namespace tokenizer {
namespace {

TEST(ChatFormatTest, RendersDeepSeekV3Template) {
  const std::vector<ChatMessage> chat = {
      {"system", "Be nice."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}};
  EXPECT_EQ(*RenderDeepSeekV3Chat(chat, true),
            "<｜begin▁of▁sentence｜>Be nice.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
            "<｜User｜>2+2?<｜Assistant｜>");
  EXPECT_EQ(*RenderDeepSeekV3Chat({{"system", "a"}, {"system", "b"}}, false),
            "<｜begin▁of▁sentence｜>a\n\nb");
  EXPECT_EQ(*RenderDeepSeekV3Chat({{"user", "q"}, {"tool", "r1"}, {"tool", "r2"}}, true),
            "<｜begin▁of▁sentence｜><｜User｜>q<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r1"
            "<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>r2<｜tool▁output▁end｜>"
            "<｜tool▁outputs▁end｜>");
  EXPECT_FALSE(RenderDeepSeekV3Chat({{"robot", "x"}}, false).ok());
}

}  // namespace
}  // namespace tokenizer
