#include "dualpipe/executor.h"

#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "dualpipe/internal/dataflow.h"
#include "dualpipe/validator.h"

namespace dualpipe {
namespace {

using internal::Part;

// A value's name: what it is and which stage of which micro-batch produced it.
struct ValueKey {
  ValueKind kind;
  int route;
  int stage;
  int microbatch;
  friend bool operator<(const ValueKey& a, const ValueKey& b) {
    return std::tie(a.kind, a.route, a.stage, a.microbatch) <
           std::tie(b.kind, b.route, b.stage, b.microbatch);
  }
};

ValueKey KeyOf(const Transfer& transfer) {
  return {transfer.kind, transfer.route, transfer.stage, transfer.microbatch};
}

comm::Buffer BytesBuffer(std::vector<std::byte>& bytes) {
  return comm::Buffer{bytes.data(), bytes.size(), core::DType::kU8, core::Device::kHost};
}

// `status` with "rank R, F0.3: " in front of its message.
absl::Status AtOp(const absl::Status& status, int rank, const Op& op) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat("rank ", rank, ", op ", FormatOp(op), ": ", status.message()));
}

}  // namespace

// The values of one step that live on this rank, and its outstanding requests. Members are
// destroyed in reverse order: requests (which withdraw what peers have not touched) before the
// buffers they name.
class Executor::StepState {
 public:
  explicit StepState(std::vector<std::vector<std::byte>>* pool) : pool_(pool) {}

  // values[key], `bytes` long, from a buffer of an earlier step when one of that size is free.
  std::vector<std::byte>& Make(const ValueKey& key, size_t bytes) {
    std::vector<std::byte>& value = values[key];
    for (size_t i = pool_->size(); i-- > 0;) {
      if ((*pool_)[i].size() == bytes) {
        value = std::move((*pool_)[i]);
        (*pool_)[i] = std::move(pool_->back());
        pool_->pop_back();
        return value;
      }
    }
    value.resize(bytes);
    return value;
  }
  // Frees values[key] (if present) into the pool.
  void Release(const ValueKey& key) {
    auto it = values.find(key);
    if (it == values.end()) return;
    pool_->push_back(std::move(it->second));
    values.erase(it);
  }
  // After a successful step: every buffer back into the pool for the next step.
  void Recycle() {
    sends.clear();
    for (std::vector<std::byte>& buffer : sent) pool_->push_back(std::move(buffer));
    for (auto& [key, buffer] : values) pool_->push_back(std::move(buffer));
    sent.clear();
    values.clear();
  }

  std::map<ValueKey, std::vector<std::byte>> values;  // received or produced, not yet consumed
  std::list<std::vector<std::byte>> sent;             // produced values whose sends are in flight
  std::vector<std::unique_ptr<comm::Request>> receives;  // [op index], null if none
  std::vector<std::unique_ptr<comm::Request>> sends;

 private:
  std::vector<std::vector<std::byte>>* pool_;

 public:
  // The value named `key`, which must be here.
  absl::StatusOr<std::vector<std::byte>*> Find(const ValueKey& key) {
    auto it = values.find(key);
    if (it == values.end()) {
      return absl::InternalError(absl::StrCat("value of route ", key.route, " stage ", key.stage,
                                              " micro-batch ", key.microbatch, " is missing"));
    }
    return &it->second;
  }
};

Executor::Executor(const Schedule& schedule, std::vector<Stage*> stages, comm::Communicator* comm,
                   ExecutorOptions options)
    : schedule_(schedule),
      stages_(std::move(stages)),
      comm_(comm),
      options_(options),
      hosted_(HostedStages(schedule_, comm->rank())),
      transfers_(DeriveTransfers(schedule_)[comm->rank()]) {
  hosted_index_.assign(stages_.size(), -1);
  for (size_t i = 0; i < hosted_.size(); ++i) hosted_index_[hosted_[i].path] = i;
  for (const Route& route : schedule_.routes) {
    max_stages_ = std::max(max_stages_, static_cast<int>(route.hops.size()));
  }
}

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(const Schedule& schedule,
                                                           std::vector<Stage*> stages,
                                                           comm::Communicator* comm,
                                                           ExecutorOptions options) {
  if (comm == nullptr) return absl::InvalidArgumentError("Executor: no communicator");
  if (schedule.num_ranks != comm->size()) {
    return absl::InvalidArgumentError(absl::StrCat("Executor: schedule '", schedule.name, "' has ",
                                                   schedule.num_ranks,
                                                   " ranks, the pipeline group ", comm->size()));
  }
  RETURN_IF_ERROR(ValidateSchedule(schedule));
  if (stages.size() < static_cast<size_t>(schedule.NumPaths())) {
    stages.resize(schedule.NumPaths(), nullptr);
  }
  auto executor = absl::WrapUnique(new Executor(schedule, std::move(stages), comm, options));
  RETURN_IF_ERROR(executor->CheckStageSizes());
  return executor;
}

absl::Status Executor::CheckStageSizes() {
  const int rank = comm_->rank();
  // This rank's own checks; their verdict travels with the sizes so that every rank fails alike.
  absl::Status local;
  std::vector<const Stage*> seen;
  for (size_t path = 0; path < stages_.size() && local.ok(); ++path) {
    const bool hosts = hosted_index_[path] >= 0;
    if (hosts && stages_[path] == nullptr) {
      local = absl::InvalidArgumentError(
          absl::StrCat("Executor: rank ", rank, " hosts path ", path, " but has no stage for it"));
    } else if (!hosts && stages_[path] != nullptr) {
      local = absl::InvalidArgumentError(absl::StrCat(
          "Executor: rank ", rank, " got a stage for path ", path, ", which it does not host"));
    } else if (hosts) {
      for (const Stage* other : seen) {
        if (other == stages_[path]) {
          local = absl::InvalidArgumentError(
              absl::StrCat("Executor: rank ", rank, " got one stage object for two paths"));
        }
      }
      seen.push_back(stages_[path]);
    }
  }
  const int routes = static_cast<int>(schedule_.routes.size());
  const int64_t max_tag = (2 * routes) * static_cast<int64_t>(max_stages_);
  if (local.ok() && max_tag > comm::Communicator::kMaxTag) {
    local = absl::InvalidArgumentError(absl::StrCat("Executor: ", routes, " routes of ",
                                                    max_stages_, " stages need more tags than ",
                                                    comm::Communicator::kMaxTag));
  }

  // [0]: 1 if the local checks passed; then (input bytes, output bytes) per (route, stage), -1
  // where this rank does not host the stage.
  const size_t slots = static_cast<size_t>(routes) * max_stages_;
  std::vector<int64_t> mine(1 + 2 * slots, -1);
  mine[0] = local.ok() ? 1 : 0;
  for (const HostedStage& hs : hosted_) {
    if (stages_[hs.path] == nullptr) continue;
    const size_t slot = static_cast<size_t>(hs.route) * max_stages_ + hs.stage;
    mine[1 + 2 * slot] = static_cast<int64_t>(stages_[hs.path]->InputBytes());
    mine[2 + 2 * slot] = static_cast<int64_t>(stages_[hs.path]->OutputBytes());
  }
  std::vector<int64_t> all(mine.size() * comm_->size());
  RETURN_IF_ERROR(
      comm_->AllGather(comm::ConstHostBuffer<int64_t>(mine), comm::HostBuffer<int64_t>(all)));
  RETURN_IF_ERROR(local);
  std::vector<int64_t> sizes(2 * slots, -1);
  for (int r = 0; r < comm_->size(); ++r) {
    const int64_t* theirs = all.data() + r * mine.size();
    if (theirs[0] != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("Executor: rank ", r, "'s stages are invalid (its error says why)"));
    }
    for (size_t i = 0; i < 2 * slots; ++i) sizes[i] = std::max(sizes[i], theirs[1 + i]);
  }
  for (int route = 0; route < routes; ++route) {
    const std::vector<Hop>& hops = schedule_.routes[route].hops;
    for (size_t s = 1; s < hops.size(); ++s) {
      const size_t slot = static_cast<size_t>(route) * max_stages_ + s;
      const int64_t produced = sizes[2 * (slot - 1) + 1];
      const int64_t consumed = sizes[2 * slot];
      if (produced != consumed) {
        return absl::InvalidArgumentError(
            absl::StrCat("Executor: route ", route, ": stage ", s - 1, " (rank ", hops[s - 1].rank,
                         ") outputs ", produced, " bytes per micro-batch but stage ", s, " (rank ",
                         hops[s].rank, ") takes ", consumed));
      }
    }
  }
  return absl::OkStatus();
}

int Executor::Tag(const Transfer& transfer) const {
  const int routes = static_cast<int>(schedule_.routes.size());
  const int kind = transfer.kind == ValueKind::kActivation ? 0 : 1;
  return (kind * routes + transfer.route) * max_stages_ + transfer.stage;
}

absl::StatusOr<StepResult> Executor::Step(absl::Span<const absl::Span<const std::byte>> inputs) {
  const int rank = comm_->rank();
  const internal::HopTable hops(schedule_);
  // The stage hosting (route, stage) here.
  auto hosted_at = [&](int route, int stage) -> const HostedStage& {
    return hosted_[hosted_index_[schedule_.routes[route].hops[stage].path]];
  };
  for (const HostedStage& hs : hosted_) {
    const size_t bytes = stages_[hs.path]->InputBytes();
    if (!hs.first() || bytes == 0) continue;
    if (inputs.size() != static_cast<size_t>(schedule_.TotalMicrobatches())) {
      return absl::InvalidArgumentError(
          absl::StrCat("Executor::Step: rank ", rank, " feeds route ", hs.route, " and needs ",
                       schedule_.TotalMicrobatches(), " inputs, got ", inputs.size()));
    }
    for (int m = 0; m < hs.num_microbatches; ++m) {
      if (inputs[hs.Global(m)].size() != bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("Executor::Step: input of micro-batch ", hs.Global(m), " has ",
                         inputs[hs.Global(m)].size(), " bytes, the first stage takes ", bytes));
      }
    }
  }

  StepResult result;
  std::vector<float> losses(schedule_.TotalMicrobatches(), 0.0f);
  const std::vector<Op>& ops = schedule_.ops[rank];
  const absl::Time step_start = absl::Now();
  auto since_start = [&] { return absl::ToDoubleSeconds(absl::Now() - step_start); };
  core::TraceRecorder* trace = options_.trace;
  if (trace != nullptr) {
    trace->NameProcess(rank, absl::StrCat("rank ", rank));
    trace->NameThread(rank, 0, "compute");
    trace->NameThread(rank, 1, "receive wait");
  }

  StepState state(&buffer_pool_);
  // Post every receive of the step, one request per op.
  state.receives.resize(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    if (transfers_[i].receives.empty()) continue;
    std::vector<comm::RecvOp> recvs;
    for (const Transfer& t : transfers_[i].receives) {
      // An activation of stage s feeds stage s + 1 here; a gradient of stage s feeds stage s - 1.
      const bool activation = t.kind == ValueKind::kActivation;
      const HostedStage& consumer = hosted_at(t.route, activation ? t.stage + 1 : t.stage - 1);
      const Stage* stage = stages_[consumer.path];
      std::vector<std::byte>& buffer =
          state.Make(KeyOf(t), activation ? stage->InputBytes() : stage->OutputBytes());
      recvs.push_back(comm::RecvOp{BytesBuffer(buffer), t.peer, Tag(t)});
    }
    ASSIGN_OR_RETURN(state.receives[i], comm_->StartBatchP2P({}, recvs));
  }

  // Loss of a forward that just ran, when its stage reports one.
  auto add_loss = [&](const HostedStage& hs, int microbatch) -> absl::Status {
    absl::StatusOr<float> loss = stages_[hs.path]->Loss(microbatch);
    if (loss.ok()) {
      losses[hs.Global(microbatch)] += *loss;
    } else if (!absl::IsUnimplemented(loss.status())) {
      return loss.status();
    }
    return absl::OkStatus();
  };
  // The input of a forward (the step's input, or the previous stage's activation) and the buffer
  // for its output.
  auto forward_io = [&](const Part& part, absl::Span<const std::byte>& input,
                        absl::Span<std::byte>& output) -> absl::Status {
    const HostedStage& hs = hosted_at(part.route, part.stage);
    if (!hs.first()) {
      ASSIGN_OR_RETURN(std::vector<std::byte> * in, state.Find({ValueKind::kActivation, part.route,
                                                                part.stage - 1, part.microbatch}));
      input = absl::MakeConstSpan(*in);
    } else if (!inputs.empty()) {
      input = inputs[hs.Global(part.microbatch)];
    }
    std::vector<std::byte>& out =
        state.Make({ValueKind::kActivation, part.route, part.stage, part.microbatch},
                   stages_[hs.path]->OutputBytes());
    output = absl::MakeSpan(out);
    return absl::OkStatus();
  };
  auto backward_io = [&](const Part& part, absl::Span<const std::byte>& output_grad,
                         absl::Span<std::byte>& input_grad) -> absl::Status {
    const HostedStage& hs = hosted_at(part.route, part.stage);
    if (!hs.last()) {
      ASSIGN_OR_RETURN(
          std::vector<std::byte> * grad,
          state.Find({ValueKind::kGradient, part.route, part.stage + 1, part.microbatch}));
      output_grad = absl::MakeConstSpan(*grad);
    }
    if (!hs.first()) {
      std::vector<std::byte>& in =
          state.Make({ValueKind::kGradient, part.route, part.stage, part.microbatch},
                     stages_[hs.path]->InputBytes());
      input_grad = absl::MakeSpan(in);
    }
    return absl::OkStatus();
  };
  // Frees what an op consumed: the activation a forward read, the gradient a backward read, and
  // a last stage's output, which nobody reads.
  auto release = [&](const Part& part) {
    const HostedStage& hs = hosted_at(part.route, part.stage);
    if (part.kind == OpKind::kForward) {
      state.Release({ValueKind::kActivation, part.route, part.stage - 1, part.microbatch});
      if (hs.last()) {
        state.Release({ValueKind::kActivation, part.route, part.stage, part.microbatch});
      }
    } else {
      state.Release({ValueKind::kGradient, part.route, part.stage + 1, part.microbatch});
    }
  };

  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    OpTiming& timing = result.timeline.emplace_back();
    timing.op = op;
    timing.start = since_start();
    const double trace_start = trace != nullptr ? trace->NowMicros() : 0;
    if (state.receives[i] != nullptr) {
      RETURN_IF_ERROR(AtOp(state.receives[i]->Wait(), rank, op));
      state.receives[i].reset();
      timing.wait = since_start() - timing.start;
      if (trace != nullptr) {
        trace->AddComplete({.name = absl::StrCat("wait ", FormatOp(op)),
                            .category = "comm",
                            .pid = rank,
                            .tid = 1,
                            .ts_us = trace_start,
                            .dur_us = trace->NowMicros() - trace_start});
      }
    }
    const double compute_start = trace != nullptr ? trace->NowMicros() : 0;

    const std::vector<Part> parts = internal::PartsOf(hops, rank, op);
    absl::Status status;
    const Part& first = parts[0];
    Stage* stage = stages_[hosted_at(first.route, first.stage).path];
    switch (op.kind) {
      case OpKind::kForward: {
        absl::Span<const std::byte> input;
        absl::Span<std::byte> output;
        status = forward_io(first, input, output);
        if (status.ok()) status = stage->Forward(first.microbatch, input, output);
        if (status.ok()) status = add_loss(hosted_at(first.route, first.stage), first.microbatch);
        break;
      }
      case OpKind::kBackward:
      case OpKind::kBackwardInput: {
        absl::Span<const std::byte> output_grad;
        absl::Span<std::byte> input_grad;
        status = backward_io(first, output_grad, input_grad);
        if (status.ok()) {
          status = op.kind == OpKind::kBackward
                       ? stage->Backward(first.microbatch, output_grad, input_grad)
                       : stage->BackwardInput(first.microbatch, output_grad, input_grad);
        }
        break;
      }
      case OpKind::kBackwardWeight:
        status = stage->BackwardWeight(first.microbatch);
        break;
      case OpKind::kForwardBackward: {
        const Part& second = parts[1];
        absl::Span<const std::byte> input, output_grad;
        absl::Span<std::byte> output, input_grad;
        status = forward_io(first, input, output);
        if (status.ok()) status = backward_io(second, output_grad, input_grad);
        if (status.ok()) {
          Stage* backward_stage = stages_[hosted_at(second.route, second.stage).path];
          status =
              stage->OverlappedForwardBackward(first.microbatch, input, output, *backward_stage,
                                               second.microbatch, output_grad, input_grad);
        }
        if (status.ok()) status = add_loss(hosted_at(first.route, first.stage), first.microbatch);
        break;
      }
    }
    RETURN_IF_ERROR(AtOp(status, rank, op));
    for (const Part& part : parts) {
      if (part.kind != OpKind::kBackwardWeight) release(part);
    }

    if (!transfers_[i].sends.empty()) {
      std::vector<comm::SendOp> sends;
      for (const Transfer& t : transfers_[i].sends) {
        auto it = state.values.find(KeyOf(t));
        std::vector<std::byte>& bytes = state.sent.emplace_back(std::move(it->second));
        state.values.erase(it);
        sends.push_back(comm::SendOp{BytesBuffer(bytes), t.peer, Tag(t)});
      }
      ASSIGN_OR_RETURN(state.sends.emplace_back(), comm_->StartBatchP2P(sends, {}));
    }
    timing.end = since_start();
    if (trace != nullptr) {
      trace->AddComplete({.name = FormatOp(op),
                          .category = "compute",
                          .pid = rank,
                          .tid = 0,
                          .ts_us = compute_start,
                          .dur_us = trace->NowMicros() - compute_start,
                          .args = {{"op", std::to_string(i)}}});
    }
  }
  for (std::unique_ptr<comm::Request>& send : state.sends) {
    const absl::Status status = send->Wait();
    if (!status.ok()) {
      return absl::Status(
          status.code(),
          absl::StrCat("rank ", rank, ", completing the step's sends: ", status.message()));
    }
  }
  if (options_.reduce_losses) {
    RETURN_IF_ERROR(comm_->AllReduce(comm::ConstHostBuffer<float>(losses),
                                     comm::HostBuffer<float>(losses), comm::ReduceOp::kSum));
  }
  result.losses = std::move(losses);
  state.Recycle();
  result.seconds = since_start();
  return result;
}

}  // namespace dualpipe
