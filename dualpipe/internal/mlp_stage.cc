#include "dualpipe/internal/mlp_stage.h"

#include <cblas.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "Eigen/Core"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "unsupported/Eigen/SpecialFunctions"

namespace dualpipe::internal {
namespace {

// SplitMix64: a value per (seed, stream, index), independent of call order.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// `count` values uniform in [-scale, scale).
std::vector<float> Uniform(uint64_t seed, uint64_t stream, size_t count, float scale) {
  std::vector<float> values(count);
  const uint64_t base = Mix(seed * 0x100000001b3ull + stream);
  for (size_t i = 0; i < count; ++i) {
    const double unit = static_cast<double>(Mix(base + i) >> 11) * 0x1.0p-53;  // [0, 1)
    values[i] = static_cast<float>((2 * unit - 1) * scale);
  }
  return values;
}

// C[m, n] (+)= op(A) op(B), row-major.
void Gemm(bool transpose_a, bool transpose_b, int m, int n, int k, const float* a, const float* b,
          float* c, bool accumulate) {
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
              transpose_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, transpose_a ? m : k, b,
              transpose_b ? k : n, accumulate ? 1.0f : 0.0f, c, n);
}

// GELU (erf form) of each h into a, and its derivative into grad, with Eigen's vectorized erf and
// exp (as PyTorch vectorizes its GELU).
void Gelu(const std::vector<float>& h, std::vector<float>& a, std::vector<float>& grad) {
  a.resize(h.size());
  grad.resize(h.size());
  const Eigen::Map<const Eigen::ArrayXf> x(h.data(), static_cast<Eigen::Index>(h.size()));
  const float inv_sqrt2 = static_cast<float>(M_SQRT1_2);
  const float inv_sqrt_2pi = static_cast<float>(0.5 * M_2_SQRTPI * M_SQRT1_2);
  const Eigen::ArrayXf cdf = 0.5f * (1.0f + (x * inv_sqrt2).erf());
  Eigen::Map<Eigen::ArrayXf>(a.data(), x.size()) = x * cdf;
  Eigen::Map<Eigen::ArrayXf>(grad.data(), x.size()) =
      cdf + x * (-0.5f * x.square()).exp() * inv_sqrt_2pi;
}

std::vector<float> FromBytes(absl::Span<const std::byte> bytes) {
  std::vector<float> values(bytes.size() / sizeof(float));
  if (!bytes.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

void ToBytes(const std::vector<float>& values, absl::Span<std::byte> bytes) {
  if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
}

constexpr uint64_t kInputStream = 1ull << 40;
constexpr uint64_t kTargetStream = 2ull << 40;

}  // namespace

std::vector<float> MlpInput(const MlpSpec& spec, int microbatch) {
  return Uniform(spec.seed, kInputStream + microbatch, size_t{1} * spec.tokens * spec.dim, 1.0f);
}

std::vector<float> MlpTarget(const MlpSpec& spec, int microbatch) {
  return Uniform(spec.seed, kTargetStream + microbatch, size_t{1} * spec.tokens * spec.dim, 1.0f);
}

MlpStage::MlpStage(const MlpSpec& spec, int stage, int first_microbatch)
    : spec_(spec),
      stage_(stage),
      first_microbatch_(first_microbatch),
      w1_(Uniform(spec.seed, 2 * stage, size_t{1} * spec.hidden * spec.dim,
                  1.0f / std::sqrt(static_cast<float>(spec.dim)))),
      w2_(Uniform(spec.seed, 2 * stage + 1, size_t{1} * spec.dim * spec.hidden,
                  1.0f / std::sqrt(static_cast<float>(spec.hidden)))),
      grad_w1_(w1_.size(), 0.0f),
      grad_w2_(w2_.size(), 0.0f) {}

size_t MlpStage::InputBytes() const { return sizeof(float) * spec_.tokens * spec_.dim; }
size_t MlpStage::OutputBytes() const {
  return last() ? 0 : sizeof(float) * spec_.tokens * spec_.dim;
}

absl::Status MlpStage::Forward(int microbatch, absl::Span<const std::byte> input,
                               absl::Span<std::byte> output) {
  if (input.size() != InputBytes() || output.size() != OutputBytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("MlpStage ", stage_, ": Forward got ", input.size(), " and ", output.size(),
                     " bytes, takes ", InputBytes(), " and ", OutputBytes()));
  }
  if (saved_.count(microbatch) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("MlpStage ", stage_, ": second Forward of micro-batch ", microbatch));
  }
  const int t = spec_.tokens, d = spec_.dim, h = spec_.hidden;
  Saved& saved = saved_[microbatch];
  saved.x = FromBytes(input);
  std::vector<float>& pre = scratch_hidden_;
  pre.resize(size_t{1} * t * h);
  Gemm(false, true, t, h, d, saved.x.data(), w1_.data(), pre.data(), false);
  Gelu(pre, saved.a, saved.gelu_grad);
  std::vector<float> y(size_t{1} * t * d);
  Gemm(false, true, t, d, h, saved.a.data(), w2_.data(), y.data(), false);
  if (last()) {
    const std::vector<float> target = MlpTarget(spec_, first_microbatch_ + microbatch);
    double sum = 0;
    for (size_t i = 0; i < y.size(); ++i) sum += double{y[i] - target[i]} * (y[i] - target[i]);
    losses_[microbatch] = static_cast<float>(sum / y.size());
    saved.y = std::move(y);
  } else {
    ToBytes(y, output);
  }
  return absl::OkStatus();
}

absl::Status MlpStage::BackwardInput(int microbatch, absl::Span<const std::byte> output_grad,
                                     absl::Span<std::byte> input_grad) {
  auto it = saved_.find(microbatch);
  if (it == saved_.end() || it->second.backward_input_done) {
    return absl::FailedPreconditionError(absl::StrCat(
        "MlpStage ", stage_, ": BackwardInput of micro-batch ", microbatch, " out of order"));
  }
  const size_t grad_bytes = last() ? 0 : OutputBytes();
  if (output_grad.size() != grad_bytes ||
      (!input_grad.empty() && input_grad.size() != InputBytes())) {
    return absl::InvalidArgumentError(absl::StrCat("MlpStage ", stage_, ": BackwardInput got ",
                                                   output_grad.size(), " and ", input_grad.size(),
                                                   " bytes"));
  }
  const int t = spec_.tokens, d = spec_.dim, h = spec_.hidden;
  Saved& saved = it->second;
  if (last()) {
    const std::vector<float> target = MlpTarget(spec_, first_microbatch_ + microbatch);
    saved.dy.resize(saved.y.size());
    const float scale = 2.0f / static_cast<float>(saved.y.size());
    for (size_t i = 0; i < saved.dy.size(); ++i) saved.dy[i] = scale * (saved.y[i] - target[i]);
  } else {
    saved.dy = FromBytes(output_grad);
  }
  saved.dh.resize(size_t{1} * t * h);
  Gemm(false, false, t, h, d, saved.dy.data(), w2_.data(), saved.dh.data(), false);
  for (size_t i = 0; i < saved.dh.size(); ++i) saved.dh[i] *= saved.gelu_grad[i];
  if (!input_grad.empty()) {
    std::vector<float> dx(size_t{1} * t * d);
    Gemm(false, false, t, d, h, saved.dh.data(), w1_.data(), dx.data(), false);
    ToBytes(dx, input_grad);
  }
  saved.backward_input_done = true;
  return absl::OkStatus();
}

absl::Status MlpStage::BackwardWeight(int microbatch) {
  auto it = saved_.find(microbatch);
  if (it == saved_.end() || !it->second.backward_input_done) {
    return absl::FailedPreconditionError(absl::StrCat(
        "MlpStage ", stage_, ": BackwardWeight of micro-batch ", microbatch, " out of order"));
  }
  const int t = spec_.tokens, d = spec_.dim, h = spec_.hidden;
  Saved& saved = it->second;
  // dW2 [d, h] += dy^T a; dW1 [h, d] += dh^T x.
  Gemm(true, false, d, h, t, saved.dy.data(), saved.a.data(), grad_w2_.data(), true);
  Gemm(true, false, h, d, t, saved.dh.data(), saved.x.data(), grad_w1_.data(), true);
  saved_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<float> MlpStage::Loss(int microbatch) const {
  if (!last()) return absl::UnimplementedError("only the last stage has a loss");
  auto it = losses_.find(microbatch);
  if (it == losses_.end()) {
    return absl::NotFoundError(absl::StrCat("no loss for micro-batch ", microbatch));
  }
  return it->second;
}

HostedMlpStages MakeHostedStages(const MlpSpec& spec, const Schedule& schedule, int rank) {
  HostedMlpStages stages;
  stages.by_path.assign(schedule.NumPaths(), nullptr);
  for (const HostedStage& hs : HostedStages(schedule, rank)) {
    stages.owned.push_back(std::make_unique<MlpStage>(spec, hs.stage, hs.first_microbatch));
    stages.by_path[hs.path] = stages.owned.back().get();
  }
  return stages;
}

std::vector<std::vector<std::byte>> MlpInputBytes(const MlpSpec& spec, int microbatches) {
  std::vector<std::vector<std::byte>> inputs;
  for (int m = 0; m < microbatches; ++m) {
    const std::vector<float> input = MlpInput(spec, m);
    std::vector<std::byte>& bytes = inputs.emplace_back(input.size() * sizeof(float));
    std::memcpy(bytes.data(), input.data(), bytes.size());
  }
  return inputs;
}

absl::StatusOr<SequentialResult> RunSequential(const MlpSpec& spec,
                                               const std::vector<RouteMicrobatches>& routes,
                                               int steps) {
  SequentialResult result;
  int total = 0;
  for (const RouteMicrobatches& route : routes) total += route.count;
  result.losses.assign(total, 0.0f);
  const size_t bytes = sizeof(float) * spec.tokens * spec.dim;
  for (const RouteMicrobatches& route : routes) {
    std::vector<MlpStage> stages;
    for (int s = 0; s < spec.num_stages; ++s) stages.emplace_back(spec, s, route.first);
    for (int i = 0; i < steps * route.count; ++i) {
      const int m = i % route.count;
      std::vector<std::vector<std::byte>> activations(spec.num_stages + 1,
                                                      std::vector<std::byte>(bytes));
      const std::vector<float> input = MlpInput(spec, route.first + m);
      std::memcpy(activations[0].data(), input.data(), bytes);
      for (int s = 0; s < spec.num_stages; ++s) {
        absl::Span<std::byte> out = absl::MakeSpan(activations[s + 1]);
        if (s == spec.num_stages - 1) out = {};
        RETURN_IF_ERROR(stages[s].Forward(m, activations[s], out));
      }
      ASSIGN_OR_RETURN(result.losses[route.first + m], stages.back().Loss(m));
      std::vector<std::byte> grad, next_grad(bytes);
      for (int s = spec.num_stages - 1; s >= 0; --s) {
        absl::Span<std::byte> input_grad =
            s > 0 ? absl::MakeSpan(next_grad) : absl::Span<std::byte>();
        RETURN_IF_ERROR(stages[s].Backward(m, grad, input_grad));
        grad = next_grad;
      }
    }
    auto& w1 = result.w1.emplace_back();
    auto& w2 = result.w2.emplace_back();
    for (const MlpStage& stage : stages) {
      w1.push_back(stage.grad_w1());
      w2.push_back(stage.grad_w2());
    }
  }
  return result;
}

}  // namespace dualpipe::internal
