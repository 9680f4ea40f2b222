// Benchmarks of schedule generation, validation and simulation (run with bazel run
// //dualpipe:schedule_benchmark). Arguments: ranks, micro-batches.
#include "benchmark/benchmark.h"
#include "dualpipe/generate.h"
#include "dualpipe/simulator.h"
#include "dualpipe/validator.h"

namespace dualpipe {
namespace {

void BM_GenerateDualPipe(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(GenerateSchedule("dualpipe", state.range(0), state.range(1)));
  }
}

void BM_GenerateZBV(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(GenerateSchedule("zbv", state.range(0), state.range(1)));
  }
}

void BM_ValidateDualPipe(benchmark::State& state) {
  const Schedule schedule = *GenerateSchedule("dualpipe", state.range(0), state.range(1));
  for (auto _ : state) benchmark::DoNotOptimize(ValidateSchedule(schedule));
}

void BM_SimulateDualPipe(benchmark::State& state) {
  const Schedule schedule = *GenerateSchedule("dualpipe", state.range(0), state.range(1));
  OpCosts costs;
  costs.forward_backward = 2.5;
  costs.p2p_latency = 0.1;
  for (auto _ : state) benchmark::DoNotOptimize(Simulate(schedule, costs));
}

void BM_Simulate1F1B(benchmark::State& state) {
  const Schedule schedule = *GenerateSchedule("1f1b", state.range(0), state.range(1));
  for (auto _ : state) benchmark::DoNotOptimize(Simulate(schedule, OpCosts()));
}

BENCHMARK(BM_GenerateDualPipe)->Args({8, 20})->Args({64, 512});
BENCHMARK(BM_GenerateZBV)->Args({4, 20})->Args({32, 256});
BENCHMARK(BM_ValidateDualPipe)->Args({8, 20})->Args({64, 512});
BENCHMARK(BM_SimulateDualPipe)->Args({8, 20})->Args({64, 512});
BENCHMARK(BM_Simulate1F1B)->Args({8, 20})->Args({64, 512});

}  // namespace
}  // namespace dualpipe
