// bench: a load generator for the serving engine, after vLLM's benchmark_serving: requests with
// Poisson arrivals (or all at once) and prompt and output lengths drawn uniformly around their
// means, at several concurrency limits; reports throughput, time to first token and inter-token
// latency (p50, p99). Then decode tokens/s at batch 1 beside the bound set by reading the active
// weights once per token at this machine's measured memory bandwidth, and, under a skewed routing
// load, throughput and balancedness with online EPLB on and off.
//
// It drives the engine in process (no HTTP), on the main job's model shape with seeded weights
// unless --model names a checkpoint.
//
//   bazel run -c opt //serving:bench -- --num_prompts=64
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "model/config.h"
#include "model/init.h"
#include "serving/engine.h"
#include "serving/model_dir.h"

ABSL_FLAG(std::string, model, "", "Checkpoint to serve; empty: --config with seeded weights.");
ABSL_FLAG(std::string, config, "serving/testdata/tiny_cpu.textproto",
          "Model config when --model is empty (the main job's model).");
ABSL_FLAG(std::string, tokenizer, "model/tokenizer/testdata/tiny_tokenizer.json",
          "Tokenizer when --model is empty.");
ABSL_FLAG(int32_t, num_prompts, 64, "Requests per concurrency level.");
ABSL_FLAG(std::string, concurrency, "1,8,32", "Concurrency limits to measure, comma-separated.");
ABSL_FLAG(double, request_rate, 0, "Poisson arrival rate (requests/s); 0: all at once.");
ABSL_FLAG(int32_t, prompt_len, 32, "Mean prompt length (uniform in [mean/2, 3 mean/2]).");
ABSL_FLAG(int32_t, output_len, 32, "Mean output length (uniform in [mean/2, 3 mean/2]).");
ABSL_FLAG(int32_t, threads, 0, "Engine compute threads; 0: one per core.");
ABSL_FLAG(int32_t, decode_tokens, 96, "Tokens of the batch-1 decode measurement.");
ABSL_FLAG(bool, eplb, true, "Run the skewed-routing EPLB comparison.");
ABSL_FLAG(int64_t, trace_steps, 0, "Chrome trace of the first N steps of the first run.");
ABSL_FLAG(std::string, trace_path, "/tmp/bench_trace.json", "Where --trace_steps writes.");

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double idx = p / 100 * (v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(idx));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - lo);
}

struct RunResult {
  double seconds = 0;
  int64_t output_tokens = 0;
  std::vector<double> ttft, itl;
};

// Runs `prompts` through a started engine with at most `concurrency` in flight.
RunResult Drive(serving::Engine* engine, const std::vector<std::vector<int32_t>>& prompts,
                const std::vector<int64_t>& outputs, int concurrency, double rate) {
  RunResult r;
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> gap(rate > 0 ? rate : 1);
  struct Live {
    std::shared_ptr<serving::RequestStream> stream;
    absl::Time start, last;  // the engine's clock: token times are when it produced them
    bool first = true;
  };
  std::vector<Live> live;
  size_t next = 0;
  const Clock::time_point begin = Clock::now();
  Clock::time_point arrival = begin;
  while (next < prompts.size() || !live.empty()) {
    while (next < prompts.size() && static_cast<int>(live.size()) < concurrency &&
           Clock::now() >= arrival) {
      serving::SamplingParams p;
      p.temperature = 0;
      p.max_tokens = outputs[next];
      p.ignore_eos = true;
      live.push_back({nullptr, absl::Now(), absl::Time(), true});
      live.back().stream = *engine->Submit(prompts[next], p);
      ++next;
      if (rate > 0)
        arrival +=
            std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
    }
    bool any = false;
    for (auto it = live.begin(); it != live.end();) {
      bool finished = false;
      while (std::optional<serving::RequestOutput> out = it->stream->Next(absl::ZeroDuration())) {
        any = true;
        if (!out->token_ids.empty()) {
          (it->first ? r.ttft : r.itl)
              .push_back(absl::ToDoubleSeconds(out->time - (it->first ? it->start : it->last)));
          it->first = false;
          it->last = out->time;
          r.output_tokens += static_cast<int64_t>(out->token_ids.size());
        }
        finished = out->finish != serving::FinishReason::kNone;
      }
      it = finished ? live.erase(it) : it + 1;
    }
    if (!any) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  r.seconds = Seconds(begin, Clock::now());
  return r;
}

// Memory read bandwidth in bytes/s: the best of a few sums over 512 MiB.
double MeasureBandwidth() {
  std::vector<float> data(128 << 20, 1.0f);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const Clock::time_point a = Clock::now();
    float acc[8] = {0};
    for (size_t i = 0; i < data.size(); i += 8) {
      for (int k = 0; k < 8; ++k) acc[k] += data[i + k];
    }
    const double s = Seconds(a, Clock::now());
    volatile float sink = acc[0] + acc[7];
    (void)sink;
    best = std::max(best, data.size() * sizeof(float) / s);
  }
  return best;
}

absl::StatusOr<serving::LoadedModel> Load() {
  if (!absl::GetFlag(FLAGS_model).empty()) return serving::LoadModelDir(absl::GetFlag(FLAGS_model));
  serving::LoadedModel m;
  ASSIGN_OR_RETURN(m.tokenizer, tokenizer::Tokenizer::FromFile(absl::GetFlag(FLAGS_tokenizer)));
  ASSIGN_OR_RETURN(m.config, model::LoadConfig(absl::GetFlag(FLAGS_config)));
  m.config.set_vocab_size(m.tokenizer->vocab_size());
  m.model =
      std::make_unique<model::ModelStage<float>>(m.config, model::StageRange::Whole(m.config));
  model::InitParams(m.model->Params(), 0.2, 1);
  return m;
}

absl::Status Run() {
  ASSIGN_OR_RETURN(serving::LoadedModel m, Load());
  const int64_t context = m.config.max_seq_len();
  std::mt19937_64 rng(1);
  const int n = absl::GetFlag(FLAGS_num_prompts);
  const int pl = absl::GetFlag(FLAGS_prompt_len), ol = absl::GetFlag(FLAGS_output_len);
  std::vector<std::vector<int32_t>> prompts(n);
  std::vector<int64_t> outputs(n);
  for (int i = 0; i < n; ++i) {
    const int64_t len =
        std::uniform_int_distribution<int64_t>(std::max(1, pl / 2), pl * 3 / 2)(rng);
    for (int64_t k = 0; k < std::min(len, context / 2); ++k) {
      prompts[i].push_back(static_cast<int32_t>(rng() % m.tokenizer->vocab_size()));
    }
    outputs[i] = std::min<int64_t>(
        std::uniform_int_distribution<int64_t>(std::max(1, ol / 2), ol * 3 / 2)(rng),
        context - static_cast<int64_t>(prompts[i].size()));
  }
  serving::EngineOptions options;
  options.threads = absl::GetFlag(FLAGS_threads);
  serving::EngineOptions traced = options;
  traced.trace_steps = absl::GetFlag(FLAGS_trace_steps);
  traced.trace_path = absl::GetFlag(FLAGS_trace_path);
  std::printf("model %s: %d layers, hidden %d, %s, context %lld\n", m.config.name().c_str(),
              m.config.num_layers(), m.config.hidden_size(), m.config.has_mla() ? "MLA" : "MHA",
              static_cast<long long>(context));
  std::printf(
      "\n| concurrency | requests | output tok/s | req/s | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 "
      "|\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (absl::string_view c : absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    int concurrency = 0;
    if (!absl::SimpleAtoi(c, &concurrency) || concurrency < 1) {
      return absl::InvalidArgumentError("--concurrency: positive integers, comma-separated");
    }
    ASSIGN_OR_RETURN(std::unique_ptr<serving::Engine> engine,
                     serving::Engine::Create(&m, concurrency == 32 ? traced : options));
    engine->Start();
    const RunResult r =
        Drive(engine.get(), prompts, outputs, concurrency, absl::GetFlag(FLAGS_request_rate));
    std::printf("| %d | %d | %.0f | %.2f | %.1f ms | %.1f ms | %.2f ms | %.2f ms |\n", concurrency,
                n, r.output_tokens / r.seconds, n / r.seconds, 1e3 * Percentile(r.ttft, 50),
                1e3 * Percentile(r.ttft, 99), 1e3 * Percentile(r.itl, 50),
                1e3 * Percentile(r.itl, 99));
  }

  // Batch 1 decode against the memory-bandwidth bound.
  {
    ASSIGN_OR_RETURN(std::unique_ptr<serving::Engine> engine, serving::Engine::Create(&m, options));
    engine->Start();
    const int64_t tokens = std::min<int64_t>(absl::GetFlag(FLAGS_decode_tokens), context - 8);
    const RunResult r = Drive(engine.get(), {std::vector<int32_t>(8, 5)}, {tokens}, 1, 0);
    const double decode = 1.0 / (std::accumulate(r.itl.begin(), r.itl.end(), 0.0) / r.itl.size());
    const double bandwidth = MeasureBandwidth();
    const double active = static_cast<double>(engine->model().ActiveWeightBytes());
    std::printf(
        "\nbatch-1 decode: %.0f tokens/s (mean inter-token %.3f ms over %lld tokens); active "
        "weights %.2f MB per token; measured read bandwidth %.1f GB/s; bound %.0f tokens/s "
        "(%.1f%% of it)\n",
        decode, 1e3 / decode, static_cast<long long>(tokens), active / 1e6, bandwidth / 1e9,
        bandwidth / active, 100 * decode / (bandwidth / active));
  }

  if (absl::GetFlag(FLAGS_eplb) && m.config.first_k_dense_layers() < m.config.num_layers()) {
    // Skew the routing: a large selection bias on two experts of every MoE layer.
    for (model::Param<float>* p : m.model->Params()) {
      if (p->name.find("e_score_correction_bias") != std::string::npos) {
        p->value.setZero();
        p->value(0, 0) = 0.5f;
        p->value(0, 1) = 0.3f;
      }
    }
    std::printf(
        "\nskewed routing (bias on experts 0 and 1), --ep=4 --num_redundant_experts=4, "
        "concurrency 32:\n\n| EPLB | output tok/s | rebalances | balancedness (mean of layers) | "
        "bytes moved |\n|---|---|---|---|---|\n");
    for (const bool on : {false, true}) {
      serving::EngineOptions o = options;
      o.ep = {.ep = 4, .num_redundant_experts = 4, .eplb_interval = on ? 16 : 0, .eplb_window = 32};
      ASSIGN_OR_RETURN(std::unique_ptr<serving::Engine> engine, serving::Engine::Create(&m, o));
      engine->Start();
      const RunResult r = Drive(engine.get(), prompts, outputs, 32, 0);
      const serving::EpStats s = engine->expert_parallel()->Stats();
      double mean = 0;
      for (double b : s.balancedness) mean += b / s.balancedness.size();
      std::printf("| %s | %.0f | %lld | %.3f | %lld |\n", on ? "on (every 16 steps)" : "off",
                  r.output_tokens / r.seconds, static_cast<long long>(s.rebalances), mean,
                  static_cast<long long>(s.bytes_moved));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  core::ParseFlagsOrExit(argc, argv,
                         "Load generator for the serving engine (see the file comment).\n"
                         "Usage: bench [--num_prompts=64 --concurrency=1,8,32 --request_rate=0 "
                         "--prompt_len=32 --output_len=32 --model=DIR]");
  const absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "bench: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
