// The pipeline executor: runs one rank's part of a schedule over the Stage objects that rank
// hosts, moving activations and gradients between ranks over a Communicator.
//
// One Step runs every op of the rank's list in order: F, B, I, W and overlapped F+B pairs (through
// Stage::OverlappedForwardBackward), W exactly where the schedule puts it. The point-to-point
// transfers are those DeriveTransfers implies. At the start of a step every receive of the step
// is posted (non-blocking), so a value sent early lands while this rank computes; an op first
// waits for its own receives, then computes, then starts its sends without waiting for them
// (sends complete by the end of the step). Values that stay on the rank (DualPipeV's turn at the
// last rank) are handed over in memory. This is the reference's `_commit_and_wait_comm` with
// `batch_isend_irecv`, with receives posted earlier.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Executor> executor,
//                    Executor::Create(schedule, {&stage_a, &stage_b}, &pipeline_comm));
//   ASSIGN_OR_RETURN(StepResult step, executor->Step(inputs));   // step.losses[m], step.timeline
//
// Every wait has the communicator's deadline: a peer that dies or never sends turns into
// DEADLINE_EXCEEDED or UNAVAILABLE naming the op and micro-batch that waited, never a hang.
// Thread-safety: one thread calls an Executor; its stages and communicator are used only from
// that thread (and from the threads the stages themselves start).
#ifndef DUALPIPE_EXECUTOR_H_
#define DUALPIPE_EXECUTOR_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "comm/communicator.h"
#include "core/trace.h"
#include "dualpipe/placement.h"
#include "dualpipe/schedule.h"
#include "dualpipe/stage.h"
#include "dualpipe/transfers.h"

namespace dualpipe {

struct ExecutorOptions {
  // Records each op (tid 0) and each wait for a receive (tid 1) with pid = the rank, when set.
  // Not owned; must outlive the executor.
  core::TraceRecorder* trace = nullptr;
  // Sum each micro-batch's loss over the pipeline group (one AllReduce at the end of a step), so
  // that every rank returns the whole losses; otherwise each rank returns its own stages' parts.
  bool reduce_losses = true;
};

// What one op did, in seconds since the start of its step.
struct OpTiming {
  Op op;
  double start = 0;
  double end = 0;
  double wait = 0;  // of [start, end], the time spent waiting for the op's receives
};

struct StepResult {
  // [global micro-batch] -> the sum of Stage::Loss over the stages that report one (see
  // ExecutorOptions::reduce_losses); 0 for micro-batches no stage reported.
  std::vector<float> losses;
  std::vector<OpTiming> timeline;  // this rank's ops in schedule order
  double seconds = 0;              // the whole step, sends included
};

class Executor {
 public:
  // Collective over `comm` (the pipeline group: comm->size() == schedule.num_ranks, this rank is
  // comm->rank()). `stages[path]` is the stage of each path label this rank hosts (see
  // HostedStages); entries for paths it does not host must be null, and a rank's stage objects
  // must be distinct. Validates the schedule and then, with one AllGather, that every stage's
  // input size equals the output size of the stage before it on its route. Returns
  // INVALID_ARGUMENT (the validator's error, or the mismatched stages) on every rank alike,
  // before anything runs, or the communicator's error. `comm` is not owned and must outlive the
  // executor.
  static absl::StatusOr<std::unique_ptr<Executor>> Create(const Schedule& schedule,
                                                          std::vector<Stage*> stages,
                                                          comm::Communicator* comm,
                                                          ExecutorOptions options = {});

  // Runs one step. `inputs[m]` is global micro-batch m's input to the first stage of its route
  // (see placement.h), read only on the rank hosting that stage; it may be empty when the stage's
  // InputBytes() is 0 (a stage that reads its own data), and `inputs` may be empty when every
  // first stage here has InputBytes() == 0. INVALID_ARGUMENT for inputs of the wrong size;
  // otherwise the first failing op's error, prefixed with the rank, op and micro-batch.
  absl::StatusOr<StepResult> Step(absl::Span<const absl::Span<const std::byte>> inputs = {});

  const std::vector<HostedStage>& hosted() const { return hosted_; }

 private:
  class StepState;

  Executor(const Schedule& schedule, std::vector<Stage*> stages, comm::Communicator* comm,
           ExecutorOptions options);
  // The AllGather of stage sizes and its check (Create's second half).
  absl::Status CheckStageSizes();
  // Tag of the stream a transfer belongs to (kind, route, producing stage).
  int Tag(const Transfer& transfer) const;

  Schedule schedule_;
  std::vector<Stage*> stages_;  // [path]
  comm::Communicator* comm_;
  ExecutorOptions options_;
  std::vector<HostedStage> hosted_;
  std::vector<int> hosted_index_;       // [path] -> index into hosted_, or -1
  std::vector<OpTransfers> transfers_;  // [op index]
  int max_stages_ = 0;                  // longest route
  // Activation and gradient buffers of earlier steps, reused so that a step does not fault in
  // fresh pages for every value.
  std::vector<std::vector<std::byte>> buffer_pool_;
};

}  // namespace dualpipe

#endif  // DUALPIPE_EXECUTOR_H_
