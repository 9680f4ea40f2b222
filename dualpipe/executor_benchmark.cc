// executor_benchmark: DeepSeek's example_dualpipe.py workload through our executor. Each stage is
// Linear(512 -> 2048, no bias) -> GELU -> Linear(2048 -> 512, no bias) in f32 with an MSE loss on
// the last stage, 20 micro-batches of 3 x 256 tokens, one BLAS thread per rank; ranks as threads
// (--backend=local) or as MPI processes (--backend=mpi, under mpirun). Prints one line per step
// and, last, `step_seconds <median>`.
//
//   bazel run -c opt //dualpipe:executor_benchmark -- --schedule=dualpipe --steps=5
//   mpirun -np 4 bazel-bin/dualpipe/executor_benchmark --backend=mpi --schedule=dualpipe
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "comm/bootstrap.h"
#include "comm/local_communicator.h"
#include "core/blas_kernels.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "core/trace.h"
#include "dualpipe/executor.h"
#include "dualpipe/generate.h"
#include "dualpipe/internal/mlp_stage.h"
#include "dualpipe/measured_costs.h"
#include "dualpipe/placement.h"
#include "dualpipe/render_svg.h"
#include "dualpipe/simulator.h"

ABSL_FLAG(std::string, schedule, "dualpipe",
          "dualpipe, dualpipev, 1f1b, zb1p, interleaved1f1b or zbv.");
ABSL_FLAG(std::string, backend, "local",
          "local (ranks as threads of this process) or mpi (one process per rank, under mpirun).");
ABSL_FLAG(int, ranks, 4, "Pipeline ranks for --backend=local (mpi: the job's size), 1..64.");
ABSL_FLAG(int, microbatches, 20, "Micro-batches per step, 1..10000.");
ABSL_FLAG(int, tokens, 768, "Tokens per micro-batch (DeepSeek's example: 3 x 256).");
ABSL_FLAG(int, hidden, 512, "Model width; the MLP's inner width is 4x.");
ABSL_FLAG(int, steps, 5, "Timed steps after one warm-up step, 1..1000.");
ABSL_FLAG(std::string, svg, "",
          "--backend=local: write PREFIX-measured.svg (the last timed step as it ran, ops placed "
          "where they computed) and PREFIX-simulated.svg (the simulator with the measured op "
          "costs).");
ABSL_FLAG(std::string, trace, "",
          "Write one more step's Chrome trace (every rank's ops and waits) to this file; under "
          "mpi each rank writes FILE.<rank>.");

namespace {

using dualpipe::internal::MlpSpec;

struct Config {
  dualpipe::Schedule schedule;
  MlpSpec spec;
  int steps = 0;
};

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  const bool ok = std::fputs(text.c_str(), file) >= 0;
  if (std::fclose(file) != 0 || !ok)
    return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status CheckRange(const char* flag, int value, int low, int high) {
  if (value < low || value > high) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be in [", low, ", ", high, "], got ", value));
  }
  return absl::OkStatus();
}

struct RankResult {
  std::vector<double> seconds;                // of each timed step
  dualpipe::OpTimeTotals op_times;            // of this rank's ops over the timed steps
  std::vector<dualpipe::OpTiming> last_step;  // the last timed step's ops
};

// The measured timelines as a Simulation, for the renderer: each op from the end of its wait.
dualpipe::Simulation AsSimulation(const std::vector<std::vector<dualpipe::OpTiming>>& ranks) {
  dualpipe::Simulation sim;
  for (const std::vector<dualpipe::OpTiming>& rank : ranks) {
    std::vector<dualpipe::TimedOp>& timeline = sim.timeline.emplace_back();
    for (const dualpipe::OpTiming& op : rank) {
      timeline.push_back({op.op, op.start + op.wait, op.end});
      sim.makespan = std::max(sim.makespan, op.end);
    }
  }
  return sim;
}

// One rank's run: builds its stages and executor, runs a warm-up and the timed steps, and
// returns the step times (rank 0's are printed) and the time its ops took.
absl::StatusOr<RankResult> RunRank(const Config& config, comm::Communicator& comm,
                                   core::TraceRecorder* trace) {
  const dualpipe::Schedule& schedule = config.schedule;
  const dualpipe::internal::HostedMlpStages hosted =
      dualpipe::internal::MakeHostedStages(config.spec, schedule, comm.rank());
  const std::vector<dualpipe::Stage*>& stages = hosted.by_path;
  const std::vector<std::vector<std::byte>> inputs =
      dualpipe::internal::MlpInputBytes(config.spec, schedule.TotalMicrobatches());
  std::vector<absl::Span<const std::byte>> spans(inputs.begin(), inputs.end());
  ASSIGN_OR_RETURN(std::unique_ptr<dualpipe::Executor> executor,
                   dualpipe::Executor::Create(schedule, stages, &comm));
  RETURN_IF_ERROR((*executor).Step(spans).status());  // warm-up
  RankResult mine;
  for (int step = 0; step < config.steps; ++step) {
    RETURN_IF_ERROR(comm.Barrier());
    ASSIGN_OR_RETURN(dualpipe::StepResult result, executor->Step(spans));
    RETURN_IF_ERROR(comm.Barrier());
    mine.seconds.push_back(result.seconds);
    mine.op_times.Add(result.timeline);
    mine.last_step = result.timeline;
  }
  if (trace != nullptr) {
    ASSIGN_OR_RETURN(std::unique_ptr<dualpipe::Executor> traced,
                     dualpipe::Executor::Create(schedule, stages, &comm, {.trace = trace}));
    RETURN_IF_ERROR(traced->Step(spans).status());
  }
  return mine;
}

// Every rank's op times summed, on every rank.
absl::Status SumOverRanks(comm::Communicator& comm, dualpipe::OpTimeTotals& totals) {
  std::vector<float> seconds(totals.seconds.begin(), totals.seconds.end());
  RETURN_IF_ERROR(comm.AllReduce(comm::ConstHostBuffer<float>(seconds),
                                 comm::HostBuffer<float>(seconds), comm::ReduceOp::kSum));
  RETURN_IF_ERROR(comm.AllReduce(comm::ConstHostBuffer<int64_t>(totals.count),
                                 comm::HostBuffer<int64_t>(totals.count), comm::ReduceOp::kSum));
  std::copy(seconds.begin(), seconds.end(), totals.seconds.begin());
  return absl::OkStatus();
}

absl::Status Run() {
  const std::string backend = absl::GetFlag(FLAGS_backend);
  if (backend != "local" && backend != "mpi") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend must be local or mpi, got '", backend, "'"));
  }
  RETURN_IF_ERROR(CheckRange("ranks", absl::GetFlag(FLAGS_ranks), 1, 64));
  RETURN_IF_ERROR(CheckRange("microbatches", absl::GetFlag(FLAGS_microbatches), 1, 10000));
  RETURN_IF_ERROR(CheckRange("tokens", absl::GetFlag(FLAGS_tokens), 1, 1 << 16));
  RETURN_IF_ERROR(CheckRange("hidden", absl::GetFlag(FLAGS_hidden), 1, 1 << 14));
  RETURN_IF_ERROR(CheckRange("steps", absl::GetFlag(FLAGS_steps), 1, 1000));
  RETURN_IF_ERROR(comm::ValidateCommFlags());
  openblas_set_num_threads(1);

  std::unique_ptr<comm::Communicator> world;
  int ranks = absl::GetFlag(FLAGS_ranks);
  if (backend == "mpi") {
    ASSIGN_OR_RETURN(world, comm::CreateWorldCommunicator(comm::Backend::kMpi));
    ranks = world->size();
  }
  Config config;
  ASSIGN_OR_RETURN(config.schedule, dualpipe::GenerateSchedule(absl::GetFlag(FLAGS_schedule), ranks,
                                                               absl::GetFlag(FLAGS_microbatches)));
  config.spec.num_stages = 0;
  for (const dualpipe::Route& route : config.schedule.routes) {
    config.spec.num_stages = std::max(config.spec.num_stages, static_cast<int>(route.hops.size()));
  }
  config.spec.dim = absl::GetFlag(FLAGS_hidden);
  config.spec.hidden = 4 * config.spec.dim;
  config.spec.tokens = absl::GetFlag(FLAGS_tokens);
  config.steps = absl::GetFlag(FLAGS_steps);
  const std::string trace_path = absl::GetFlag(FLAGS_trace);
  core::TraceRecorder trace;
  core::TraceRecorder* tracer = trace_path.empty() ? nullptr : &trace;

  std::vector<double> seconds;
  dualpipe::OpTimeTotals op_times;
  std::vector<std::vector<dualpipe::OpTiming>> last_steps(ranks);
  if (world != nullptr) {
    ASSIGN_OR_RETURN(RankResult mine, RunRank(config, *world, tracer));
    RETURN_IF_ERROR(SumOverRanks(*world, mine.op_times));
    seconds = std::move(mine.seconds);
    op_times = mine.op_times;
  } else {
    std::mutex mu;
    const std::vector<absl::Status> statuses =
        comm::RunLocalRanks(ranks, [&](comm::Communicator& comm) -> absl::Status {
          ASSIGN_OR_RETURN(RankResult mine, RunRank(config, comm, tracer));
          std::lock_guard<std::mutex> lock(mu);
          op_times.Add(mine.op_times);
          last_steps[comm.rank()] = std::move(mine.last_step);
          if (comm.rank() == 0) seconds = std::move(mine.seconds);
          return absl::OkStatus();
        });
    for (const absl::Status& status : statuses) RETURN_IF_ERROR(status);
  }
  const bool prints = world == nullptr || world->rank() == 0;
  // Forward 2 GEMMs and backward 4, each 2 * tokens * dim * 4dim FLOPs, per stage and micro-batch.
  const double flops = 12.0 * config.spec.tokens * config.spec.dim * config.spec.hidden *
                       config.spec.num_stages * config.schedule.TotalMicrobatches();
  if (prints) {
    std::printf("%s, %d ranks (%s), %d micro-batches of %d tokens, width %d: %.0f GFLOP per step\n",
                config.schedule.name.c_str(), ranks, backend.c_str(),
                config.schedule.TotalMicrobatches(), config.spec.tokens, config.spec.dim,
                flops / 1e9);
    std::printf("%6s %12s %12s\n", "step", "seconds", "GFLOP/s");
    for (size_t i = 0; i < seconds.size(); ++i) {
      std::printf("%6zu %12.3f %12.1f\n", i + 1, seconds[i], flops / seconds[i] / 1e9);
    }
  }
  if (tracer != nullptr) {
    // Threads share one trace; MPI processes write one file each, suffixed with the rank.
    if (world == nullptr) {
      RETURN_IF_ERROR(trace.WriteFile(trace_path));
    } else {
      RETURN_IF_ERROR(trace.WriteFile(absl::StrCat(trace_path, ".", world->rank())));
    }
  }
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  // The simulator's view of the same schedule with the op costs measured here.
  const dualpipe::OpCosts costs = op_times.Costs();
  absl::StatusOr<dualpipe::Simulation> sim = dualpipe::Simulate(config.schedule, costs);
  if (prints && sim.ok()) {
    double busy = 0;
    for (const dualpipe::RankStats& rank : sim->ranks) busy += rank.busy;
    std::printf(
        "op costs measured (ms): F %.1f, B %.1f, W %.1f, F+B %s\n"
        "simulated step with these costs: %.3f s (bubble %.1f%% of rank time); measured %.3f s "
        "(%.1f%% beyond the ops' own time)\n",
        1e3 * costs.forward, 1e3 * costs.backward, 1e3 * costs.weight,
        costs.forward_backward < 0 ? "-"
                                   : absl::StrFormat("%.1f", 1e3 * costs.forward_backward).c_str(),
        sim->makespan, 100 * sim->total_bubble / (sim->makespan * ranks), median,
        100 * (median * ranks - busy) / (median * ranks));
  }
  const std::string svg = absl::GetFlag(FLAGS_svg);
  if (!svg.empty() && world == nullptr && sim.ok()) {
    const double width = 960;  // pixels for the step
    const dualpipe::Simulation measured = AsSimulation(last_steps);
    RETURN_IF_ERROR(
        WriteText(svg + "-measured.svg",
                  dualpipe::RenderSvg(measured, costs,
                                      absl::StrCat(config.schedule.name, ": a real step (", ranks,
                                                   " ranks as threads, ops where they computed)"),
                                      width / measured.makespan)));
    RETURN_IF_ERROR(
        WriteText(svg + "-simulated.svg",
                  dualpipe::RenderSvg(
                      *sim, costs,
                      absl::StrCat(config.schedule.name, ": simulated with the measured op costs"),
                      width / sim->makespan)));
  }
  if (prints) std::printf("step_seconds %.4f\n", median);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  core::UseBestBlasKernels(argv);
  core::ParseFlagsOrExit(
      argc, argv,
      "Times DeepSeek's example DualPipe workload through the pipeline "
      "executor.\nUsage: executor_benchmark [--schedule=S] [--backend=local|mpi] "
      "[--steps=N] [--trace=FILE]");
  if (const absl::Status status = Run(); !status.ok()) {
    std::fprintf(stderr, "executor_benchmark: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
