// The tokenizer.json `pre_tokenizer`: splits a normalized text section into the pieces ("words")
// the BPE model encodes one by one. Supported: Sequence, Split (Regex or String pattern, every
// `behavior`, `invert`), Digits (`individual_digits`), and ByteLevel (`add_prefix_space`,
// `use_regex` with GPT-2's pattern) as the last step. ByteLevel's byte-to-character mapping is not
// applied here: pieces stay raw bytes, and the BPE model's vocabulary is kept in bytes.
#ifndef MODEL_TOKENIZER_INTERNAL_PRE_TOKENIZER_H_
#define MODEL_TOKENIZER_INTERNAL_PRE_TOKENIZER_H_

#include <forward_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/tokenizer/internal/regex.h"
#include "nlohmann/json.hpp"

namespace tokenizer::internal {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// The buffers that PreTokenizer::Split and SplitPiece reuse from call to call. One per thread of
// work (not thread-safe); serves any PreTokenizer.
struct SplitWorkspace {
  struct Range {
    size_t begin, end;
    bool delimiter;
  };
  RegexWorkspace regex;
  std::vector<std::pair<size_t, size_t>> matches;  // SplitPiece's
  std::vector<Range> ranges;                       // SplitPiece's
  std::vector<std::string_view> current, next;     // Split's, a step's input and output
};

class PreTokenizer {
 public:
  // Parses `config` (the JSON at `path`). A null config keeps each section whole. InvalidArgument
  // naming the JSON path for an unsupported type or option, or a regex that does not compile.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> FromJson(const nlohmann::json& config,
                                                                const std::string& path);

  // True when the pipeline ends with ByteLevel (the byte-level BPE family).
  bool byte_level() const { return byte_level_; }

  // Appends the non-empty pieces of `section` to *pieces, in order. Pieces point into `section`
  // or into strings added to *arena (ByteLevel's prefix space), so both must outlive them.
  // Precondition: `section` is valid UTF-8. Thread-safe when concurrent calls pass different
  // workspaces.
  absl::Status Split(std::string_view section, SplitWorkspace& workspace,
                     std::forward_list<std::string>* arena,
                     std::vector<std::string_view>* pieces) const;

 private:
  struct Step {
    enum Kind { kRegexSplit, kPrefixSpace } kind = kRegexSplit;
    std::unique_ptr<Regex> regex;
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
  };
  static absl::Status ParseInto(const nlohmann::json& config, const std::string& path,
                                PreTokenizer* out);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

// Splits `piece` at the matches of `regex` (or, inverted, at what lies between them) as `behavior`
// says, appending the non-empty parts to *out. `out` must not be one of `workspace`'s vectors.
absl::Status SplitPiece(std::string_view piece, const Regex& regex, SplitBehavior behavior,
                        bool invert, SplitWorkspace& workspace, std::vector<std::string_view>* out);

}  // namespace tokenizer::internal

#endif  // MODEL_TOKENIZER_INTERNAL_PRE_TOKENIZER_H_
