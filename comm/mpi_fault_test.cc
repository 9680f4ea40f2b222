// Fault test of the mpi backend, run under mpirun (see mpirun_test.sh). The last rank misbehaves
// (--fault=never_joins: alive but skips the call; --fault=exits: returns from main at once) and
// every other rank must get DEADLINE_EXCEEDED within the deadline, then FAILED_PRECONDITION from
// the aborted communicator. Exits 0 on every rank when that holds.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "comm/mpi_communicator.h"

ABSL_FLAG(std::string, fault, "never_joins", "never_joins or exits");

namespace comm {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(2);
// Slack for an oversubscribed machine: the error must come well before anything hangs.
constexpr absl::Duration kSlack = absl::Seconds(5);

int Run(const std::string& fault, const CommOptions& options) {
  absl::StatusOr<std::unique_ptr<Communicator>> world = CreateMpiWorld(options);
  if (!world.ok()) {
    std::cerr << world.status() << "\n";
    return 1;
  }
  Communicator& comm = **world;
  const int last = comm.size() - 1;
  if (comm.rank() == last) {
    if (fault == "never_joins") absl::SleepFor(kDeadline + kSlack);
    return 0;
  }
  std::vector<int32_t> value = {comm.rank()};
  const absl::Time start = absl::Now();
  const absl::Status status = fault == "never_joins"
                                  ? comm.AllReduce(ConstHostBuffer<int32_t>(value),
                                                   HostBuffer<int32_t>(value), ReduceOp::kSum)
                                  : comm.Recv(HostBuffer<int32_t>(value), last);
  const absl::Duration elapsed = absl::Now() - start;
  const absl::Status after = comm.Barrier();
  std::cout << "rank " << comm.rank() << " (" << fault << "): " << status << " after "
            << absl::FormatDuration(elapsed) << "; then " << after << "\n";
  const bool ok = absl::IsDeadlineExceeded(status) && elapsed >= kDeadline &&
                  elapsed < kDeadline + kSlack && absl::IsFailedPrecondition(after);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace comm

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Fault test of the mpi backend; run under mpirun.");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<comm::CommOptions> options = comm::CommOptionsFromFlags();
  if (!options.ok()) {
    std::cerr << options.status().message() << "\n";
    return 2;
  }
  options->timeout = comm::kDeadline;
  const std::string fault = absl::GetFlag(FLAGS_fault);
  if (fault != "never_joins" && fault != "exits") {
    std::cerr << "--fault must be never_joins or exits, got '" << fault << "'\n";
    return 2;
  }
  return comm::Run(fault, *options);
}
