#include "model/tokenizer/internal/token_matcher.h"

#include <unicode/uchar.h>

#include "model/tokenizer/utf8.h"

namespace tokenizer::internal {

TokenMatcher::TokenMatcher() : nodes_(1) {}

void TokenMatcher::Add(std::string_view content, int index) {
  if (content.empty()) return;
  first_byte_[static_cast<unsigned char>(content[0])] = true;
  int32_t node = 0;
  for (char c : content) {
    const unsigned char b = static_cast<unsigned char>(c);
    const auto it = nodes_[node].children.find(b);
    if (it != nodes_[node].children.end()) {
      node = it->second;
      continue;
    }
    const int32_t child = static_cast<int32_t>(nodes_.size());
    nodes_[node].children.emplace(b, child);
    nodes_.emplace_back();
    node = child;
  }
  if (nodes_[node].index < 0) nodes_[node].index = index;
}

void TokenMatcher::FindAll(std::string_view text, std::vector<Match>* out) const {
  if (empty()) return;
  size_t i = 0;
  while (i < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    int32_t node = 0;
    int best_index = -1;
    size_t best_end = 0;
    for (size_t j = i; j < text.size(); ++j) {
      const auto it = nodes_[node].children.find(static_cast<unsigned char>(text[j]));
      if (it == nodes_[node].children.end()) break;
      node = it->second;
      if (nodes_[node].index >= 0) {
        best_index = nodes_[node].index;
        best_end = j + 1;
      }
    }
    if (best_index >= 0) {
      out->push_back({i, best_end, best_index});
      i = best_end;
    } else {
      ++i;
    }
  }
}

bool IsWhiteSpace(char32_t c) { return u_hasBinaryProperty(c, UCHAR_WHITE_SPACE); }

bool IsWordCharacter(char32_t c) {
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL)) {
    return true;
  }
  const int8_t type = u_charType(c);
  return type == U_NON_SPACING_MARK || type == U_ENCLOSING_MARK ||
         type == U_COMBINING_SPACING_MARK || type == U_DECIMAL_DIGIT_NUMBER ||
         type == U_CONNECTOR_PUNCTUATION;
}

char32_t LastCodePoint(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return NextCodePoint(s, &i);
}

char32_t FirstCodePoint(std::string_view s) {
  size_t i = 0;
  return NextCodePoint(s, &i);
}

}  // namespace tokenizer::internal
