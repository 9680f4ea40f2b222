// Communication benchmarks: point-to-point latency and bandwidth (ping-pong between ranks 0 and
// 1), AllReduce and AllToAll algorithm and bus bandwidth (nccl-tests' definitions).
//
//   Local backend (ranks are threads):   bazel run -c opt //comm:comm_benchmark
//   mpi backend (ranks are processes):   mpirun -np 2 bazel-bin/comm/comm_benchmark
// Under mpirun every rank runs the same fixed iteration counts and only rank 0 reports.
//
// Counters: algbw = bytes / time per call (for p2p: bytes / one-way time = half the ping-pong
// round trip that Time shows); busbw = algbw * 2(n-1)/n for AllReduce, * (n-1)/n for AllToAll.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "comm/bootstrap.h"
#include "comm/communicator.h"
#include "comm/local_communicator.h"
#include "comm/mpi_communicator.h"

namespace comm {
namespace {

enum class Kind { kP2P, kAllReduce, kAllToAll };

constexpr absl::Duration kTimeout = absl::Seconds(30);

// One rank's buffers for `kind` with `bytes` per call, and the call itself.
class Workload {
 public:
  Workload(Kind kind, size_t bytes, int ranks)
      : kind_(kind),
        input_(bytes / sizeof(float), 1.0f),
        output_(bytes / sizeof(float)),
        counts_(ranks, bytes / sizeof(float) / ranks) {}

  absl::Status Step(Communicator& comm) {
    const ConstBuffer input = ConstHostBuffer<float>(input_);
    const Buffer output = HostBuffer<float>(output_);
    switch (kind_) {
      case Kind::kP2P:
        if (comm.rank() == 0) {
          if (absl::Status status = comm.Send(input, 1); !status.ok()) return status;
          return comm.Recv(output, 1);
        }
        if (comm.rank() == 1) {
          if (absl::Status status = comm.Recv(output, 0); !status.ok()) return status;
          return comm.Send(input, 0);
        }
        return absl::OkStatus();
      case Kind::kAllReduce:
        return comm.AllReduce(input, output, ReduceOp::kSum);
      case Kind::kAllToAll:
        return comm.AllToAll(input, counts_, output, counts_);
    }
    return absl::OkStatus();
  }

 private:
  Kind kind_;
  std::vector<float> input_;
  std::vector<float> output_;
  std::vector<size_t> counts_;
};

void SetCounters(benchmark::State& state, Kind kind, int ranks, size_t bytes) {
  const double n = ranks;
  // p2p: one ping-pong moves `bytes` each way; one-way time is half an iteration.
  const double algbw_bytes = kind == Kind::kP2P ? 2.0 * bytes : static_cast<double>(bytes);
  const double bus_factor = kind == Kind::kAllReduce  ? 2.0 * (n - 1) / n
                            : kind == Kind::kAllToAll ? (n - 1) / n
                                                      : 1.0;
  state.counters["algbw"] = benchmark::Counter(
      algbw_bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
  state.counters["busbw"] =
      benchmark::Counter(algbw_bytes * bus_factor, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1024);
}

// Local backend: this thread is rank 0; helper threads run the other ranks for exactly as many
// iterations as the benchmark loop will.
void RunLocal(benchmark::State& state, Kind kind, int ranks, size_t bytes) {
  std::vector<std::unique_ptr<Communicator>> group = CreateLocalGroup(ranks);
  for (auto& comm : group) comm->set_timeout(kTimeout);
  const int64_t iterations = state.max_iterations;
  std::vector<std::thread> helpers;
  for (int r = 1; r < ranks; ++r) {
    helpers.emplace_back([&, r] {
      Workload workload(kind, bytes, ranks);
      for (int64_t i = 0; i < iterations && workload.Step(*group[r]).ok(); ++i) {
      }
      group[r].reset();  // a failed rank leaves, so the others fail fast
    });
  }
  Workload workload(kind, bytes, ranks);
  for (auto _ : state) {
    if (absl::Status status = workload.Step(*group[0]); !status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
  }
  group[0].reset();
  for (std::thread& helper : helpers) helper.join();
  SetCounters(state, kind, ranks, bytes);
}

// mpi backend: every process runs this with the same fixed iteration count.
void RunMpi(benchmark::State& state, Communicator* world, Kind kind, size_t bytes) {
  Workload workload(kind, bytes, world->size());
  if (absl::Status status = world->Barrier(); !status.ok()) {
    state.SkipWithError(status.ToString().c_str());
  }
  for (auto _ : state) {
    if (absl::Status status = workload.Step(*world); !status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
  }
  SetCounters(state, kind, world->size(), bytes);
}

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kP2P:
      return "p2p";
    case Kind::kAllReduce:
      return "allreduce";
    case Kind::kAllToAll:
      return "alltoall";
  }
  return "?";
}

std::vector<size_t> Sizes(Kind kind) {
  if (kind == Kind::kP2P) return {8, 4 << 10, 256 << 10, 4 << 20};
  return {4 << 10, 256 << 10, 4 << 20};
}

constexpr Kind kKinds[] = {Kind::kP2P, Kind::kAllReduce, Kind::kAllToAll};

void RegisterLocal() {
  for (Kind kind : kKinds) {
    for (int ranks : {2, 4}) {
      if (kind == Kind::kP2P && ranks > 2) continue;
      for (size_t bytes : Sizes(kind)) {
        benchmark::RegisterBenchmark(
            absl::StrCat("local/", KindName(kind), "/ranks:", ranks, "/bytes:", bytes).c_str(),
            [=](benchmark::State& state) { RunLocal(state, kind, ranks, bytes); })
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

void RegisterMpi(Communicator* world) {
  for (Kind kind : kKinds) {
    for (size_t bytes : Sizes(kind)) {
      // Fixed counts, the same on every rank: about 256 MiB moved, 20 to 10000 calls.
      const int64_t iterations =
          std::clamp<int64_t>((int64_t{256} << 20) / static_cast<int64_t>(bytes), 20, 10000);
      benchmark::RegisterBenchmark(
          absl::StrCat("mpi/", KindName(kind), "/ranks:", world->size(), "/bytes:", bytes).c_str(),
          [=](benchmark::State& state) { RunMpi(state, world, kind, bytes); })
          ->Iterations(iterations)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

// Ranks other than 0 run the benchmarks silently.
class SilentReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace
}  // namespace comm

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  const absl::StatusOr<comm::LaunchEnvironment> env = comm::ReadLaunchEnvironment();
  if (!env.ok()) {
    std::cerr << "comm_benchmark: " << env.status() << "\n";
    return 2;
  }
  std::unique_ptr<comm::Communicator> world;
  if (env->launcher == comm::Launcher::kNone) {
    comm::RegisterLocal();
  } else {
    absl::StatusOr<std::unique_ptr<comm::Communicator>> mpi = comm::CreateMpiWorld();
    if (!mpi.ok() || (*mpi)->size() < 2) {
      std::cerr << "comm_benchmark: needs an MPI job of 2 or more ranks: "
                << (mpi.ok() ? absl::OkStatus() : mpi.status()) << "\n";
      return 1;
    }
    world = *std::move(mpi);
    world->set_timeout(comm::kTimeout);
    comm::RegisterMpi(world.get());
  }
  if (env->rank == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    comm::SilentReporter silent;
    benchmark::RunSpecifiedBenchmarks(&silent);
  }
  benchmark::Shutdown();
  return 0;
}
