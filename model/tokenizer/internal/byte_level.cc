#include "model/tokenizer/internal/byte_level.h"

#include "model/tokenizer/utf8.h"

namespace tokenizer::internal {
namespace {

bool IsPrintedAsItself(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

std::array<char32_t, 256> MakeByteToCodePoint() {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) table[b] = IsPrintedAsItself(b) ? b : next++;
  return table;
}

// Inverse of the table: code points 0..0x143 to bytes, -1 elsewhere.
std::array<int, 0x144> MakeCodePointToByte() {
  std::array<int, 0x144> inverse;
  inverse.fill(-1);
  const std::array<char32_t, 256>& forward = ByteToCodePoint();
  for (int b = 0; b < 256; ++b) inverse[forward[b]] = b;
  return inverse;
}

}  // namespace

const std::array<char32_t, 256>& ByteToCodePoint() {
  static const std::array<char32_t, 256> table = MakeByteToCodePoint();
  return table;
}

std::string BytesToByteLevel(std::string_view bytes) {
  const std::array<char32_t, 256>& table = ByteToCodePoint();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) AppendCodePoint(table[static_cast<unsigned char>(c)], &out);
  return out;
}

bool ByteLevelToBytes(std::string_view text, std::string* out) {
  static const std::array<int, 0x144> inverse = MakeCodePointToByte();
  if (!IsValidUtf8(text)) return false;
  out->clear();
  size_t i = 0;
  while (i < text.size()) {
    const char32_t cp = NextCodePoint(text, &i);
    if (cp >= inverse.size() || inverse[cp] < 0) return false;
    out->push_back(static_cast<char>(inverse[cp]));
  }
  return true;
}

}  // namespace tokenizer::internal
