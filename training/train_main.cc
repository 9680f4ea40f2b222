// train: trains a DeepSeek-V3-style MoE model with DualPipe (or another pipeline schedule) x
// expert parallelism x data parallelism, on ranks as threads of this process or as MPI processes.
//
//   bazel run //training:train -- --config=training/configs/tiny_cpu.textproto
//   bazel run //training:train -- --config=... --set optimizer.lr=1e-3 --set parallel.pp=4
//   mpirun -np 4 bazel-bin/training/train --config=... --output_dir=/tmp/run
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "comm/bootstrap.h"
#include "comm/local_communicator.h"
#include "core/blas_kernels.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "dualpipe/generate.h"
#include "dualpipe/placement.h"
#include "dualpipe/simulator.h"
#include "training/config.h"
#include "training/trainer.h"

ABSL_FLAG(std::string, config, "", "Training config (text-format training.TrainingConfig).");
ABSL_FLAG(std::string, output_dir, "/tmp/dsmoe-train",
          "Where checkpoints/, metrics.jsonl, loss.svg, traces/ and expert_loads/ go.");
ABSL_FLAG(int, steps, 0, "Overrides the config's steps when positive.");
ABSL_FLAG(bool, resume, false, "Continue from the newest complete checkpoint in --output_dir.");
ABSL_FLAG(bool, dry_run, false,
          "Print parameters, memory per rank and the simulated bubble of the schedule and layout, "
          "then exit without allocating the model.");
ABSL_FLAG(std::string, backend, "auto",
          "auto (mpi under mpirun or srun, else threads), local (ranks as threads) or mpi.");
ABSL_FLAG(std::string, device, "cpu", "cpu; cuda is planned (issue 18).");
ABSL_FLAG(std::string, trace_steps, "",
          "A:B writes a Chrome trace per rank of steps A..B (1-based) under OUTPUT_DIR/traces.");
ABSL_FLAG(double, peak_tflops, 0,
          "The machine's peak for MFU; 0 measures one core's SGEMM rate times the cores.");

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

// Exit codes: 2 for a bad command line or config (before any work), 1 for a failed run.
struct Failure {
  int code;
  absl::Status status;
};

// Pulls every "--set X" / "--set=X" out of argv (Abseil flags cannot repeat).
std::vector<std::string> TakeOverrides(int* argc, char** argv) {
  std::vector<std::string> overrides;
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    if (std::strcmp(argv[i], "--set") == 0 && i + 1 < *argc) {
      overrides.push_back(argv[++i]);
    } else if (std::strncmp(argv[i], "--set=", 6) == 0) {
      overrides.push_back(argv[i] + 6);
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  return overrides;
}

absl::Status ParseTraceSteps(const std::string& text, training::TrainerOptions* options) {
  if (text.empty()) return absl::OkStatus();
  const std::vector<std::string> parts = absl::StrSplit(text, ':');
  int first = 0, last = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &first) ||
      !absl::SimpleAtoi(parts[1], &last) || first < 1 || last < first) {
    return absl::InvalidArgumentError(
        absl::StrCat("--trace_steps must be A:B with 1 <= A <= B, got '", text, "'"));
  }
  options->trace_first_step = first;
  options->trace_last_step = last;
  return absl::OkStatus();
}

// "8.89M", "671.0B".
std::string Count(double n) {
  if (n >= 1e9) return absl::StrFormat("%.1fB", n / 1e9);
  if (n >= 1e6) return absl::StrFormat("%.2fM", n / 1e6);
  return absl::StrFormat("%.0f", n);
}

// What the run would be, from the config alone: nothing of the model is allocated.
void PrintDryRun(const training::TrainingConfig& config) {
  const model::ModelConfig& model = config.model();
  const training::ParameterCount params = training::CountParameters(model);
  const training::ParallelConfig& parallel = config.parallel();
  const std::vector<std::pair<int, int>> layers = training::StageLayerRanges(config);
  const int stages = static_cast<int>(layers.size());
  std::printf("model %s: %s parameters, %s active per token, %d layers\n", model.name().c_str(),
              Count(params.total).c_str(), Count(params.active).c_str(), model.num_layers());
  const int64_t tokens_per_step = static_cast<int64_t>(parallel.microbatches()) *
                                  parallel.sequences_per_microbatch() * config.data().seq_len() *
                                  parallel.ep() * parallel.dp();
  std::printf(
      "layout pp=%d ep=%d dp=%d (%d ranks), schedule %s over %d model stages, %d micro-batches of "
      "%d x %d tokens per pipeline, %lld tokens per step\n",
      parallel.pp(), parallel.ep(), parallel.dp(), parallel.pp() * parallel.ep() * parallel.dp(),
      parallel.schedule().c_str(), stages, parallel.microbatches(),
      parallel.sequences_per_microbatch(), config.data().seq_len(),
      static_cast<long long>(tokens_per_step));
  absl::StatusOr<dualpipe::Schedule> schedule =
      dualpipe::GenerateSchedule(parallel.schedule(), parallel.pp(), parallel.microbatches());
  if (!schedule.ok()) return;  // validated before; unreachable
  // Per pipeline rank: its stages' weights every expert rank holds, plus 1/ep of their routed
  // experts; f32 weights and gradients and AdamW's two f32 moments are 16 bytes a parameter (8
  // and 8 / dp under ZeRO-1).
  int64_t most = 0;
  int busiest = 0;
  for (int rank = 0; rank < parallel.pp(); ++rank) {
    int64_t held = 0;
    for (const dualpipe::HostedStage& hs : dualpipe::HostedStages(*schedule, rank)) {
      const training::StageParameterCount c =
          training::CountStageParameters(model, layers[hs.stage].first, layers[hs.stage].second,
                                         hs.stage == 0, hs.stage == stages - 1);
      held += c.replicated + c.routed_experts / parallel.ep();
    }
    if (held > most) {
      most = held;
      busiest = rank;
    }
  }
  std::string split;
  for (const auto& [begin, end] : layers)
    absl::StrAppend(&split, split.empty() ? "" : ",", end - begin);
  std::printf("layers per stage: %s\n", split.c_str());
  if (parallel.zero1() && parallel.dp() > 1) {
    // ZeRO-1: each data-parallel replica holds the moments of a 1/dp slice.
    const double moment_bytes = 8.0 / parallel.dp();
    std::printf(
        "per rank: at most %s parameters (pipeline rank %d): %.2f GiB of f32 weights and gradients "
        "(8 bytes each) and AdamW moments sharded over dp=%d (ZeRO-1: %.3g bytes each), "
        "activations not included\n",
        Count(most).c_str(), busiest, most * (8.0 + moment_bytes) / (1ull << 30), parallel.dp(),
        moment_bytes);
  } else {
    std::printf(
        "per rank: at most %s parameters (pipeline rank %d): %.2f GiB of f32 weights, gradients "
        "and AdamW moments (16 bytes each), activations not included\n",
        Count(most).c_str(), busiest, most * 16.0 / (1ull << 30));
  }
  absl::StatusOr<dualpipe::Simulation> sim = dualpipe::Simulate(*schedule, dualpipe::OpCosts{});
  if (sim.ok()) {
    std::printf(
        "simulated step (F=1, B=2, W=1 per stage and micro-batch): makespan %.0f, bubble %.1f%% of "
        "rank time (%.1f per rank), at most %d micro-batches' activations held per rank\n",
        sim->makespan, 100 * sim->total_bubble / (sim->makespan * parallel.pp()),
        sim->total_bubble / parallel.pp(), sim->max_peak_activations);
  }
}

// This job's processes on this machine, as mpirun or srun says (1 when neither does).
int ProcessesOnThisMachine() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"}) {
    int count = 0;
    const char* value = std::getenv(name);
    if (value != nullptr && absl::SimpleAtoi(value, &count) && count > 0) return count;
  }
  return 1;
}

// The exit code of TrainRank's error: 2 when it came before the first step (a layout or data the
// run cannot use), else 1. Errors found here before TrainRank (bad paths, a checkpoint that cannot
// be resumed) exit 2 directly.
int ExitCode(const absl::Status& status) { return training::IsSetupError(status) ? 2 : 1; }

Failure RunTraining(const training::TrainingConfig& config, const training::TrainerOptions& options,
                    const std::string& backend) {
  const int world_size = config.parallel().pp() * config.parallel().ep() * config.parallel().dp();
  absl::StatusOr<comm::LaunchEnvironment> launch = comm::ReadLaunchEnvironment();
  if (backend == "local" ||
      (backend == "auto" && (!launch.ok() || launch->launcher == comm::Launcher::kNone))) {
    if (options.resume) {
      if (absl::Status status = training::CheckResume(config, options.output_dir); !status.ok()) {
        return {2, status};
      }
    }
    absl::StatusOr<training::PreparedData> data = training::PrepareData(config, options.output_dir);
    if (!data.ok()) return {2, data.status()};
    std::printf("data: %s\n", data->summary.c_str());
    const int blas_threads = training::SetBlasThreadsPerRank(world_size);
    std::printf(
        "training %s: %d ranks as threads (pp=%d ep=%d dp=%d%s), %s, %d steps, %d BLAS thread(s) "
        "per rank\n",
        config.model().name().c_str(), world_size, config.parallel().pp(), config.parallel().ep(),
        config.parallel().dp(),
        config.parallel().zero1() && config.parallel().dp() > 1 ? ", ZeRO-1" : "",
        config.parallel().schedule().c_str(), config.steps(), blas_threads);
    std::fflush(stdout);
    std::mutex mu;
    training::TrainSummary summary;
    const std::vector<absl::Status> statuses =
        comm::RunLocalRanks(world_size, [&](comm::Communicator& world) -> absl::Status {
          ASSIGN_OR_RETURN(training::TrainSummary mine,
                           training::TrainRank(config, options, *data, world));
          std::lock_guard<std::mutex> lock(mu);
          if (world.rank() == 0) summary = std::move(mine);
          return absl::OkStatus();
        });
    // The first rank's own error, rather than the others' reports that it left.
    for (const absl::Status& status : statuses) {
      if (!status.ok() && !absl::IsUnavailable(status)) return {ExitCode(status), status};
    }
    for (const absl::Status& status : statuses) {
      if (!status.ok()) return {ExitCode(status), status};
    }
    std::printf(
        "done: step %lld, loss %.4f, validation loss %.4f (perplexity %.1f) against the corpus's "
        "unigram entropy %.4f\n",
        static_cast<long long>(summary.steps), summary.final_loss, summary.val_loss,
        std::exp(summary.val_loss), data->unigram_entropy);
    std::printf("checkpoint: %s\nmetrics: %s/metrics.jsonl, loss curves: %s/loss.svg\n",
                summary.checkpoint.c_str(), options.output_dir.c_str(), options.output_dir.c_str());
    std::printf("serve it: bazel run -c opt //serving:server -- --model=%s\n",
                summary.checkpoint.c_str());
    return {0, absl::OkStatus()};
  }
  if (options.resume) {
    if (absl::Status status = training::CheckResume(config, options.output_dir); !status.ok()) {
      return {2, status};
    }
  }
  absl::StatusOr<std::unique_ptr<comm::Communicator>> world = comm::CreateWorldCommunicator(
      backend == "local" ? comm::Backend::kLocal : comm::Backend::kMpi);
  if (!world.ok()) return {1, world.status()};
  if ((*world)->size() != world_size) {
    return {2, absl::InvalidArgumentError(absl::StrCat(
                   "the job has ", (*world)->size(), " processes, the layout needs ", world_size))};
  }
  training::SetBlasThreadsPerRank(ProcessesOnThisMachine());
  // Rank 0 builds the tokenizer and token caches; the others then read them.
  absl::StatusOr<training::PreparedData> data;
  if ((*world)->rank() == 0) data = training::PrepareData(config, options.output_dir);
  if (absl::Status status = (*world)->Barrier(); !status.ok()) return {1, status};
  if ((*world)->rank() != 0) data = training::PrepareData(config, options.output_dir);
  if (!data.ok()) return {2, data.status()};
  absl::StatusOr<training::TrainSummary> summary =
      training::TrainRank(config, options, *data, **world);
  if (!summary.ok()) return {ExitCode(summary.status()), summary.status()};
  if ((*world)->rank() == 0) {
    std::printf("done: step %lld, loss %.4f, validation loss %.4f; checkpoint %s\n",
                static_cast<long long>(summary->steps), summary->final_loss, summary->val_loss,
                summary->checkpoint.c_str());
  }
  return {0, absl::OkStatus()};
}

}  // namespace

int main(int argc, char** argv) {
  core::UseBestBlasKernels(argv);
  const std::vector<std::string> overrides = TakeOverrides(&argc, argv);
  core::ParseFlagsOrExit(
      argc, argv,
      "Trains a DeepSeek-V3-style MoE model with pipeline (DualPipe), expert and data "
      "parallelism.\nUsage: train --config=FILE [--set field.path=value]... [--output_dir=DIR] "
      "[--steps=N] [--resume] [--dry_run] [--trace_steps=A:B]");
  auto fail = [](int code, const absl::Status& status) {
    std::string message(status.message());
    std::replace(message.begin(), message.end(), '\n', ' ');  // one line
    std::fprintf(stderr, "train: %s\n", message.c_str());
    return code;
  };
  if (absl::GetFlag(FLAGS_config).empty()) {
    return fail(2, absl::InvalidArgumentError("--config is required (see --help)"));
  }
  if (absl::GetFlag(FLAGS_device) != "cpu") {
    return fail(2, absl::UnimplementedError(absl::StrCat(
                       "--device=", absl::GetFlag(FLAGS_device),
                       ": only cpu trains today; the GPU model stage is planned (issue 18)")));
  }
  const std::string backend = absl::GetFlag(FLAGS_backend);
  if (backend != "auto" && backend != "local" && backend != "mpi") {
    return fail(2, absl::InvalidArgumentError(
                       absl::StrCat("--backend must be auto, local or mpi, got '", backend, "'")));
  }
  if (absl::Status status = comm::ValidateCommFlags(); !status.ok()) return fail(2, status);
  std::vector<std::string> all_overrides = overrides;
  if (absl::GetFlag(FLAGS_steps) > 0) {
    all_overrides.push_back(absl::StrCat("steps=", absl::GetFlag(FLAGS_steps)));
  } else if (absl::GetFlag(FLAGS_steps) < 0) {
    return fail(2, absl::InvalidArgumentError("--steps must be positive"));
  }
  absl::StatusOr<training::TrainingConfig> config =
      training::LoadTrainingConfig(absl::GetFlag(FLAGS_config), all_overrides);
  if (!config.ok()) return fail(2, config.status());
  if (absl::GetFlag(FLAGS_dry_run)) {
    PrintDryRun(*config);
    return 0;
  }
  training::TrainerOptions options;
  options.output_dir = absl::GetFlag(FLAGS_output_dir);
  options.resume = absl::GetFlag(FLAGS_resume);
  options.peak_gflops = absl::GetFlag(FLAGS_peak_tflops) * 1000;
  options.progress_bar = isatty(fileno(stdout));
  options.stop = &g_stop;
  if (absl::Status status = ParseTraceSteps(absl::GetFlag(FLAGS_trace_steps), &options);
      !status.ok()) {
    return fail(2, status);
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  const Failure result = RunTraining(*config, options, backend);
  if (!result.status.ok()) return fail(result.code, result.status);
  return 0;
}
