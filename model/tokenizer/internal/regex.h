// A compiled pre-tokenizer regex on PCRE2 (UTF-8, Unicode properties, JIT).
//
// Patterns are written for Hugging Face's tokenizers library (which compiles them with Oniguruma)
// and mostly mean the same in PCRE2; the one difference that changes tokenization is `\s`, which
// there is Unicode's White_Space property and in PCRE2 Z plus tab..CR (no U+0085). Compile
// rewrites `\s` and `\S` (also inside classes, except `\S` there, which is rejected) into
// explicit White_Space classes, so matches equal that library's.
//
// Thread-safe: FindAll is const; concurrent calls each pass their own RegexWorkspace.
#ifndef MODEL_TOKENIZER_INTERNAL_REGEX_H_
#define MODEL_TOKENIZER_INTERNAL_REGEX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tokenizer::internal {

// What matching reuses from call to call: PCRE2 match data and a JIT stack big enough for long
// inputs (up to 4 MiB). Serves any Regex; one per thread of work (not thread-safe).
class RegexWorkspace {
 public:
  RegexWorkspace();
  ~RegexWorkspace();
  RegexWorkspace(const RegexWorkspace&) = delete;
  RegexWorkspace& operator=(const RegexWorkspace&) = delete;

 private:
  friend class Regex;
  void* data_;     // pcre2_match_data*
  void* context_;  // pcre2_match_context*, with stack_ assigned
  void* stack_;    // pcre2_jit_stack*
};

class Regex {
 public:
  // InvalidArgument if the pattern does not compile (the message carries PCRE2's reason and
  // offset).
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends to *matches the [begin, end) byte ranges of the successive non-overlapping, non-empty
  // matches in `text`, left to right. Precondition: `text` is valid UTF-8 (not re-checked).
  // Internal if PCRE2 fails (for instance its JIT stack is exhausted).
  absl::Status FindAll(std::string_view text, RegexWorkspace& workspace,
                       std::vector<std::pair<size_t, size_t>>* matches) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;   // as given
  void* code_ = nullptr;  // pcre2_code*
  bool jit_ = false;
};

// The PCRE2 pattern Compile uses for a tokenizer.json one (exposed for tests).
absl::StatusOr<std::string> TranslateRegex(std::string_view pattern);

}  // namespace tokenizer::internal

#endif  // MODEL_TOKENIZER_INTERNAL_REGEX_H_
