// Choosing the next token from a row of logits: greedy, or temperature with top-k and top-p
// (nucleus) filtering, drawn from a per-request seeded generator; and the log-probabilities the
// OpenAI API reports (of the model's distribution, before temperature and filtering).
#ifndef SERVING_SAMPLER_H_
#define SERVING_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "model/init.h"

namespace serving {

struct SamplingParams {
  double temperature = 1.0;       // 0: greedy (the lowest id among equal best logits)
  int64_t top_k = 0;              // keep the k most likely tokens; 0: all
  double top_p = 1.0;             // keep the smallest set of most likely tokens whose mass >= top_p
  std::optional<uint64_t> seed;   // unset: a random seed per request
  int64_t max_tokens = 16;        // at least 1
  std::vector<std::string> stop;  // text that ends the output (left out of it)
  std::vector<int32_t> stop_token_ids;  // tokens that end the output (besides EOS)
  bool ignore_eos = false;
  int64_t logprobs = -1;  // -1: none; n >= 0: the chosen token's log-probability and the n best

  // INVALID_ARGUMENT naming the field for a value out of range (temperature < 0 or > 100,
  // top_k < 0, top_p outside (0, 1], max_tokens < 1, logprobs > 20, an empty stop string, more
  // than 16 stop strings).
  absl::Status Validate() const;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
};

struct SampledToken {
  int32_t id = 0;
  float logprob = 0;              // log softmax of the raw logits at `id` (if logprobs >= 0)
  std::vector<TokenLogprob> top;  // the params.logprobs best, best first (empty if < 1)
};

// Samples from logits [vocab]; only ids below `vocab` are candidates. `rng` is the request's
// generator (one draw per sampled token unless greedy).
SampledToken Sample(const float* logits, int64_t vocab, const SamplingParams& params,
                    model::Rng* rng);

}  // namespace serving

#endif  // SERVING_SAMPLER_H_
