#include "model/tokenizer/utf8.h"

#include <cstdint>

namespace tokenizer {
namespace {

// The valid range of the second byte for a lead byte (Unicode Table 3-7); the later continuation
// bytes are always 0x80..0xBF.
bool SecondByteOk(uint8_t lead, uint8_t b) {
  if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
  if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
  if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
  return b >= 0x80 && b <= 0xBF;
}

// The sequence length a lead byte announces, or 0 for a byte that cannot lead.
int LeadLength(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// How many bytes from s[i] form a valid prefix of a sequence (1 for an invalid lead: the lead
// itself is the maximal subpart), and whether that prefix is a whole character.
size_t MaximalPrefix(std::string_view s, size_t i, bool* complete) {
  const uint8_t lead = static_cast<uint8_t>(s[i]);
  const int n = LeadLength(lead);
  *complete = n == 1;
  if (n <= 1) return 1;
  size_t k = 1;
  while (k < static_cast<size_t>(n) && i + k < s.size()) {
    const uint8_t b = static_cast<uint8_t>(s[i + k]);
    const bool ok = k == 1 ? SecondByteOk(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return k;
    ++k;
  }
  *complete = k == static_cast<size_t>(n);
  return k;
}

}  // namespace

size_t ValidSequenceLength(std::string_view s, size_t i) {
  bool complete = false;
  const size_t k = MaximalPrefix(s, i, &complete);
  return complete ? k : 0;
}

bool IsValidUtf8(std::string_view s, size_t* bad_offset) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = ValidSequenceLength(s, i);
    if (n == 0) {
      if (bad_offset != nullptr) *bad_offset = i;
      return false;
    }
    i += n;
  }
  return true;
}

void AppendLossyUtf8(std::string_view bytes, std::string* out) {
  size_t i = 0;
  while (i < bytes.size()) {
    bool complete = false;
    const size_t k = MaximalPrefix(bytes, i, &complete);
    if (complete) {
      out->append(bytes.data() + i, k);
    } else {
      out->append("\xEF\xBF\xBD");
    }
    i += k;
  }
}

size_t CompletePrefixLength(std::string_view bytes) {
  // A character is at most 4 bytes: only a sequence starting in the last 3 bytes can be cut.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const size_t i = n - back;
    const uint8_t b = static_cast<uint8_t>(bytes[i]);
    if (b >= 0x80 && b <= 0xBF) continue;  // a continuation byte: look further back
    bool complete = false;
    const size_t k = MaximalPrefix(bytes, i, &complete);
    // Held back only if a valid lead's prefix runs to the end and is not yet a whole character.
    return (LeadLength(b) > 1 && !complete && i + k == n) ? i : n;
  }
  return n;
}

void AppendCodePoint(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t NextCodePoint(std::string_view s, size_t* i) {
  const uint8_t b0 = static_cast<uint8_t>(s[*i]);
  if (b0 < 0x80) {
    ++*i;
    return b0;
  }
  const int n = LeadLength(b0);
  char32_t cp = b0 & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[*i + k]) & 0x3F);
  *i += n;
  return cp;
}

}  // namespace tokenizer
