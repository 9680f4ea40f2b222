#include "serving/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace serving {

absl::Status SamplingParams::Validate() const {
  if (!(temperature >= 0 && temperature <= 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be in [0, 100], got ", temperature));
  }
  if (top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", top_k));
  if (!(top_p > 0 && top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", top_p));
  }
  if (max_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be >= 1, got ", max_tokens));
  }
  if (logprobs > 20) {
    return absl::InvalidArgumentError(absl::StrCat("logprobs must be <= 20, got ", logprobs));
  }
  if (stop.size() > 16) return absl::InvalidArgumentError("at most 16 stop strings");
  for (const std::string& s : stop) {
    if (s.empty()) return absl::InvalidArgumentError("stop strings must not be empty");
  }
  return absl::OkStatus();
}

SampledToken Sample(const float* logits, int64_t vocab, const SamplingParams& params,
                    model::Rng* rng) {
  double max = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) max = std::max<double>(max, logits[i]);
  // Log-softmax of the raw logits, in double, only when logprobs are asked for.
  double log_z = 0;
  if (params.logprobs >= 0) {
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(logits[i] - max);
    log_z = max + std::log(sum);
  }
  const auto logprob = [&](int64_t i) { return static_cast<float>(logits[i] - log_z); };
  // Candidates by logit, best first; ties to the lower id.
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  const auto better = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  SampledToken out;
  const int64_t keep = params.top_k > 0 ? std::min(params.top_k, vocab) : vocab;
  const bool greedy = params.temperature == 0 || keep == 1;
  const int64_t wanted = std::max<int64_t>(params.logprobs, greedy ? 1 : keep);
  const int64_t sorted = std::min(vocab, std::max<int64_t>(wanted, 1));
  std::partial_sort(order.begin(), order.begin() + sorted, order.end(), better);
  if (greedy) {
    out.id = order[0];
  } else {
    // Temperature, top-k (the first `keep` of order), then top-p on the renormalised mass.
    std::vector<double> probs(keep);
    double total = 0;
    for (int64_t i = 0; i < keep; ++i) {
      probs[i] = std::exp((logits[order[i]] - max) / params.temperature);
      total += probs[i];
    }
    int64_t n = keep;
    if (params.top_p < 1) {
      double mass = 0;
      for (int64_t i = 0; i < keep; ++i) {
        mass += probs[i] / total;
        if (mass >= params.top_p) {
          n = i + 1;
          break;
        }
      }
    }
    double kept = 0;
    for (int64_t i = 0; i < n; ++i) kept += probs[i];
    const double u = rng->Uniform() * kept;
    double acc = 0;
    out.id = order[n - 1];
    for (int64_t i = 0; i < n; ++i) {
      acc += probs[i];
      if (u < acc) {
        out.id = order[i];
        break;
      }
    }
  }
  if (params.logprobs >= 0) out.logprob = logprob(out.id);
  for (int64_t i = 0; i < std::max<int64_t>(params.logprobs, 0) && i < vocab; ++i) {
    out.top.push_back({order[i], logprob(order[i])});
  }
  return out;
}

}  // namespace serving
