// Test helpers shared by the serving tests: a whole model with seeded weights and the tiny
// tokenizer's vocabulary, and seeded prompts. Test-only (paths are relative to the runfiles root).
#ifndef SERVING_TEST_MODELS_H_
#define SERVING_TEST_MODELS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "serving/model_dir.h"

namespace serving {

// The shape of the config at `config_path` (e.g. "serving/testdata/tiny_cpu.textproto") with the
// vocabulary of model/tokenizer/testdata/tiny_tokenizer.json, a context of `max_seq_len`, and
// weights drawn with std 0.2 from `seed` (a larger spread than the configs' init_std, so that
// outputs depend on the context). CHECK-fails if a file cannot be read.
LoadedModel SeededTinyModel(const std::string& config_path, int64_t max_seq_len, uint64_t seed);

// `n` token ids in [100, 500) drawn from `seed`.
std::vector<int32_t> SeededPrompt(int64_t n, uint64_t seed);

}  // namespace serving

#endif  // SERVING_TEST_MODELS_H_
