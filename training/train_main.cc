// train: trains a DeepSeek-V3-style MoE model with DualPipe (or another pipeline schedule) x
// expert parallelism x data parallelism, on ranks as threads of this process or as MPI processes.
//
//   bazel run //training:train -- --config=training/configs/tiny_cpu.textproto
//   bazel run //training:train -- --config=... --set optimizer.lr=1e-3 --set parallel.pp=4
//   mpirun -np 4 bazel-bin/training/train --config=... --output_dir=/tmp/run
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "comm/bootstrap.h"
#include "comm/local_communicator.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "dualpipe/generate.h"
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

void PrintDryRun(const training::TrainingConfig& config) {
  const training::ParameterCount params = training::CountParameters(config.model());
  const training::ParallelConfig& parallel = config.parallel();
  const int stages = training::NumModelStages(config);
  // Per rank: its stages' share of the dense weights plus 1/ep of the experts; DualPipe holds two
  // stages per rank (V-shaped schedules too, of half the size).
  const double per_rank_params = static_cast<double>(params.total) / stages *
                                 (stages / parallel.pp()) / parallel.ep() *
                                 (config.parallel().schedule() == "dualpipe" ? 2 : 1);
  // f32 weights, gradients and AdamW's two moments.
  const double bytes = per_rank_params * 16;
  std::printf("model %s: %.3g parameters, %.3g active per token, %d layers in %d stages\n",
              config.model().name().c_str(), static_cast<double>(params.total),
              static_cast<double>(params.active), config.model().num_layers(), stages);
  std::printf("layout pp=%d ep=%d dp=%d (%d ranks), schedule %s, %d micro-batches per step\n",
              parallel.pp(), parallel.ep(), parallel.dp(),
              parallel.pp() * parallel.ep() * parallel.dp(), parallel.schedule().c_str(),
              parallel.microbatches());
  std::printf(
      "per rank: about %.3g parameters, %.1f GiB of f32 weights, gradients and AdamW state\n",
      per_rank_params, bytes / (1u << 30));
  absl::StatusOr<dualpipe::Schedule> schedule =
      dualpipe::GenerateSchedule(parallel.schedule(), parallel.pp(), parallel.microbatches());
  if (schedule.ok()) {
    absl::StatusOr<dualpipe::Simulation> sim = dualpipe::Simulate(*schedule, dualpipe::OpCosts{});
    if (sim.ok()) {
      std::printf("simulated step (F=1, B=2, W=1): makespan %.0f, bubble %.1f%% of rank time\n",
                  sim->makespan, 100 * sim->total_bubble / (sim->makespan * parallel.pp()));
    }
  }
}

absl::Status RunTraining(const training::TrainingConfig& config,
                         const training::TrainerOptions& options, const std::string& backend) {
  const int world_size = config.parallel().pp() * config.parallel().ep() * config.parallel().dp();
  if (backend == "local" || (backend == "auto" && !comm::ReadLaunchEnvironment().ok()) ||
      (backend == "auto" && comm::ReadLaunchEnvironment()->launcher == comm::Launcher::kNone)) {
    ASSIGN_OR_RETURN(training::PreparedData data,
                     training::PrepareData(config, options.output_dir));
    std::printf("data: %s\n", data.summary.c_str());
    std::printf("training %s: %d ranks as threads (pp=%d ep=%d dp=%d), %s, %d steps\n",
                config.model().name().c_str(), world_size, config.parallel().pp(),
                config.parallel().ep(), config.parallel().dp(),
                config.parallel().schedule().c_str(), config.steps());
    std::fflush(stdout);
    std::mutex mu;
    training::TrainSummary summary;
    const std::vector<absl::Status> statuses =
        comm::RunLocalRanks(world_size, [&](comm::Communicator& world) -> absl::Status {
          ASSIGN_OR_RETURN(training::TrainSummary mine,
                           training::TrainRank(config, options, data, world));
          std::lock_guard<std::mutex> lock(mu);
          if (world.rank() == 0) summary = std::move(mine);
          return absl::OkStatus();
        });
    // The first rank's own error, rather than the others' reports that it left.
    for (const absl::Status& status : statuses) {
      if (!status.ok() && !absl::IsUnavailable(status)) return status;
    }
    for (const absl::Status& status : statuses) RETURN_IF_ERROR(status);
    std::printf(
        "done: step %lld, loss %.4f, validation loss %.4f (perplexity %.1f) against the corpus's "
        "unigram entropy %.4f\n",
        static_cast<long long>(summary.steps), summary.final_loss, summary.val_loss,
        std::exp(summary.val_loss), data.unigram_entropy);
    std::printf("checkpoint: %s\nmetrics: %s/metrics.jsonl, loss curves: %s/loss.svg\n",
                summary.checkpoint.c_str(), options.output_dir.c_str(), options.output_dir.c_str());
    std::printf("serve it: bazel run -c opt //serving:server -- --model=%s\n",
                summary.checkpoint.c_str());
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::unique_ptr<comm::Communicator> world,
                   comm::CreateWorldCommunicator(backend == "local" ? comm::Backend::kLocal
                                                                    : comm::Backend::kMpi));
  if (world->size() != world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("the job has ", world->size(), " processes, the layout needs ", world_size));
  }
  // Rank 0 builds the tokenizer and token caches; the others then read them.
  absl::StatusOr<training::PreparedData> data;
  if (world->rank() == 0) data = training::PrepareData(config, options.output_dir);
  RETURN_IF_ERROR(world->Barrier());
  if (world->rank() != 0) data = training::PrepareData(config, options.output_dir);
  RETURN_IF_ERROR(data.status());
  ASSIGN_OR_RETURN(training::TrainSummary summary,
                   training::TrainRank(config, options, *data, *world));
  if (world->rank() == 0) {
    std::printf("done: step %lld, loss %.4f, validation loss %.4f; checkpoint %s\n",
                static_cast<long long>(summary.steps), summary.final_loss, summary.val_loss,
                summary.checkpoint.c_str());
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> overrides = TakeOverrides(&argc, argv);
  core::ParseFlagsOrExit(
      argc, argv,
      "Trains a DeepSeek-V3-style MoE model with pipeline (DualPipe), expert and data "
      "parallelism.\nUsage: train --config=FILE [--set field.path=value]... [--output_dir=DIR] "
      "[--steps=N] [--resume] [--dry_run] [--trace_steps=A:B]");
  auto fail = [](int code, const absl::Status& status) {
    std::fprintf(stderr, "train: %s\n", std::string(status.message()).c_str());
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
  if (absl::Status status = RunTraining(*config, options, backend); !status.ok()) {
    return fail(absl::IsInvalidArgument(status) || absl::IsNotFound(status) ? 2 : 1, status);
  }
  return 0;
}
