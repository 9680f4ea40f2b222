// Finds added tokens in a text: the leftmost-longest non-overlapping occurrences of a set of
// strings (as Hugging Face's aho-corasick LeftmostLongest), with a byte trie. Also the two
// character classes that added tokens' flags use: Unicode White_Space (lstrip / rstrip) and word
// characters (single_word: Alphabetic, marks, decimal digits, connector punctuation,
// Join_Control, as Rust's `\w`).
#ifndef MODEL_TOKENIZER_INTERNAL_TOKEN_MATCHER_H_
#define MODEL_TOKENIZER_INTERNAL_TOKEN_MATCHER_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace tokenizer::internal {

class TokenMatcher {
 public:
  struct Match {
    size_t begin, end;  // byte range in the text
    int index;          // as given to Add
  };

  TokenMatcher();
  // Adds a non-empty string; `index` is reported with its matches. A string added twice keeps
  // the first index.
  void Add(std::string_view content, int index);
  bool empty() const { return nodes_.size() == 1; }

  // Appends the leftmost-longest non-overlapping matches in `text`, left to right.
  void FindAll(std::string_view text, std::vector<Match>* out) const;

 private:
  struct Node {
    absl::flat_hash_map<unsigned char, int32_t> children;
    int index = -1;
  };
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

bool IsWhiteSpace(char32_t c);
bool IsWordCharacter(char32_t c);
// The character that ends / starts `s` (valid UTF-8, non-empty).
char32_t LastCodePoint(std::string_view s);
char32_t FirstCodePoint(std::string_view s);

}  // namespace tokenizer::internal

#endif  // MODEL_TOKENIZER_INTERNAL_TOKEN_MATCHER_H_
