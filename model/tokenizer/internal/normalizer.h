// The tokenizer.json `normalizer`: null, NFC, NFKC, NFD, NFKD or a Sequence of them, applied with
// ICU. Anything else is rejected at load with its JSON path.
#ifndef MODEL_TOKENIZER_INTERNAL_NORMALIZER_H_
#define MODEL_TOKENIZER_INTERNAL_NORMALIZER_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tokenizer::internal {

class Normalizer {
 public:
  // Parses `config` (the JSON at `path`, e.g. "normalizer"); a null config is the identity.
  // InvalidArgument naming the path for an unsupported type.
  static absl::StatusOr<Normalizer> FromJson(const nlohmann::json& config, const std::string& path);

  // True when Apply never changes its input.
  bool is_identity() const { return forms_.empty(); }

  // Returns `text` normalized. Precondition: `text` is valid UTF-8. Thread-safe.
  absl::StatusOr<std::string> Apply(std::string_view text) const;

 private:
  std::vector<const void*> forms_;  // const UNormalizer2*, applied in order
};

}  // namespace tokenizer::internal

#endif  // MODEL_TOKENIZER_INTERNAL_NORMALIZER_H_
