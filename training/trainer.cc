#include "training/trainer.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/types/span.h"
#include "comm/parallel_groups.h"
#include "core/status_macros.h"
#include "core/trace.h"
#include "dualpipe/executor.h"
#include "dualpipe/generate.h"
#include "dualpipe/placement.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "model/config.h"
#include "model/expert_exchange.h"
#include "model/init.h"
#include "model/model_stage.h"
#include "model/safetensors.h"
#include "model/stage_adapter.h"
#include "model/tokenizer/bpe_trainer.h"
#include "nlohmann/json.hpp"
#include "training/checkpoint.h"
#include "training/config.h"
#include "training/data/batcher.h"
#include "training/data/corpus.h"
#include "training/metrics.h"
#include "training/optimizer.h"

namespace training {
namespace fs = std::filesystem;
namespace {

constexpr char kSetupErrorUrl[] = "dsmoe/training/setup-error";
constexpr char kEosToken[] = "<｜end▁of▁sentence｜>";
// Gradients are all-reduced over data-parallel replicas in buckets of this many floats; ZeRO-1
// all-gathers the updated parameters in buckets of about as many.
constexpr size_t kBucketFloats = size_t{4} << 20;

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `status` prefixed with what was being done.
absl::Status With(const absl::Status& status, absl::string_view what) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(what, ": ", status.message()));
}

// One model stage this rank hosts, with everything that belongs to it.
struct HostedModelStage {
  dualpipe::HostedStage hosted;
  std::unique_ptr<model::ModelStage<float>> stage;
  std::unique_ptr<AdamW> optimizer;
  std::vector<model::Param<float>*> trainable;   // every trainable parameter
  std::vector<model::Param<float>*> replicated;  // held by every expert rank
  std::set<const model::Param<float>*> experts;  // this rank's routed experts
  std::unique_ptr<model::StageAdapter> adapter;  // this step's
};

// A stage whose forward fails (TrainerOptions::fail_at_step); the rest is the wrapped stage's.
class FailingStage : public dualpipe::Stage {
 public:
  FailingStage(dualpipe::Stage* inner, std::string why) : inner_(inner), why_(std::move(why)) {}
  size_t InputBytes() const override { return inner_->InputBytes(); }
  size_t OutputBytes() const override { return inner_->OutputBytes(); }
  absl::Status Forward(int, absl::Span<const std::byte>, absl::Span<std::byte>) override {
    return absl::InternalError(why_);
  }
  absl::Status BackwardInput(int microbatch, absl::Span<const std::byte> output_grad,
                             absl::Span<std::byte> input_grad) override {
    return inner_->BackwardInput(microbatch, output_grad, input_grad);
  }
  absl::Status BackwardWeight(int microbatch) override {
    return inner_->BackwardWeight(microbatch);
  }
  absl::StatusOr<float> Loss(int microbatch) const override { return inner_->Loss(microbatch); }
  absl::Status OverlappedForwardBackward(int, absl::Span<const std::byte>, absl::Span<std::byte>,
                                         Stage&, int, absl::Span<const std::byte>,
                                         absl::Span<std::byte>) override {
    return absl::InternalError(why_);
  }

 private:
  dualpipe::Stage* inner_;
  std::string why_;
};

// Sum of squares of the trainable gradients in `params`.
double SumOfSquares(const std::vector<model::Param<float>*>& params,
                    const std::set<const model::Param<float>*>* only,
                    const std::set<const model::Param<float>*>* except) {
  double sum = 0;
  for (const model::Param<float>* p : params) {
    if (!p->trainable()) continue;
    if (only != nullptr && only->count(p) == 0) continue;
    if (except != nullptr && except->count(p) != 0) continue;
    for (int64_t i = 0; i < p->grad.size(); ++i)
      sum += double{p->grad.data()[i]} * p->grad.data()[i];
  }
  return sum;
}

std::vector<float> FlattenGrads(const std::vector<model::Param<float>*>& params) {
  std::vector<float> flat;
  for (const model::Param<float>* p : params) {
    flat.insert(flat.end(), p->grad.data(), p->grad.data() + p->grad.size());
  }
  return flat;
}

void UnflattenGrads(const std::vector<float>& flat,
                    const std::vector<model::Param<float>*>& params) {
  size_t offset = 0;
  for (model::Param<float>* p : params) {
    std::copy_n(flat.data() + offset, p->grad.size(), p->grad.data());
    offset += p->grad.size();
  }
}

// Elements [offset, offset + count) of `shard`, clipped to it.
FlatRange SubRange(const FlatRange& shard, int64_t offset, int64_t count) {
  return {std::min(shard.end, shard.begin + offset),
          std::min(shard.end, shard.begin + offset + count)};
}

// Copies the parameter values of `range` of the flat space of `params` to `out`.
void ReadValues(const std::vector<model::Param<float>*>& params, const FlatRange& range,
                float* out) {
  ForEachPiece(params, range, [&](model::Param<float>& p, int64_t at, int64_t to, int64_t count) {
    std::copy_n(p.value.data() + at, count, out + to);
  });
}

// Copies `in` into the parameter values of `range` of the flat space of `params`.
void WriteValues(const std::vector<model::Param<float>*>& params, const FlatRange& range,
                 const float* in) {
  ForEachPiece(params, range, [&](model::Param<float>& p, int64_t at, int64_t from, int64_t count) {
    std::copy_n(in + from, count, p.value.data() + at);
  });
}

double MeasurePeak() {
  constexpr int n = 384;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  const int threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    const auto start = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * n * n * n / seconds / 1e9);
  }
  openblas_set_num_threads(threads);
  return best * std::max(1u, std::thread::hardware_concurrency());
}

class RankTrainer {
 public:
  RankTrainer(const TrainingConfig& config, const TrainerOptions& options, const PreparedData& data,
              comm::Communicator& world)
      : config_(config), options_(options), data_(data), world_(world) {}

  absl::StatusOr<TrainSummary> Run();

 private:
  // The training loop after Setup (and the resume).
  absl::StatusOr<TrainSummary> Loop(const std::string& checkpoints);
  // `status`, a communication error, with the world rank that was lost when one was.
  absl::Status NameLostRank(const absl::Status& status);
  absl::Status Setup();
  absl::Status BuildStages();
  absl::Status BuildData();
  // One training step (or, with `update` false, a validation pass over `batcher`).
  struct StepStats {
    double loss = 0;
    double grad_norm = 0;
    double seconds = 0;
    double compute_seconds = 0;  // rank 0's ops
    double wait_seconds = 0;     // rank 0's receive waits
    double balance = 1;          // max / mean expert load over MoE layers
  };
  absl::StatusOr<StepStats> Step(data::Batcher& batcher, bool update, core::TraceRecorder* trace);
  absl::Status SyncGradients();
  // ZeRO-1: the data-parallel sum of this replica's slice of `flat` (a stage's gradients), in
  // buckets of kBucketFloats; the rest of `flat` keeps this replica's own gradients.
  absl::Status ReduceScatterGradients(std::vector<float>& flat);
  // ZeRO-1: every data-parallel replica's updated slice of the parameters, to every replica.
  absl::Status GatherParameters();
  // ZeRO-1: AdamW's moments of stage `s`, gathered to data-parallel replica 0 (whole flat space
  // there; the other replicas send their slices and leave the outputs empty). Collective over the
  // data-parallel group.
  absl::Status GatherOptimizerState(HostedModelStage& s, std::vector<float>* exp_avg,
                                    std::vector<float>* exp_avg_sq);
  absl::StatusOr<double> GlobalGradNorm();
  // Global expert loads per MoE block of each hosted stage (summed over EP, DP and DualPipe's
  // copies); then the bias update. Returns max/mean over all layers' experts.
  absl::StatusOr<double> UpdateExpertBias(int64_t step);
  // The 1-based MoE layer list and the loads of all of them, on every rank.
  absl::Status WriteExpertLoads(int64_t step,
                                const std::map<int, std::vector<int64_t>>& layer_loads);
  // Mean of a per-rank value over the (EP, DP) pipelines.
  absl::StatusOr<double> MeanOverPipelines(double value);
  absl::Status SaveCheckpoint(int64_t step);
  absl::Status LoadCheckpoint(const std::string& dir);
  std::string ShardName(const char* kind, int stage) const {
    return absl::StrCat(kind, "-stage", stage, "-ep", groups_.coordinates.ep, ".safetensors");
  }
  bool IsWorldZero() const { return world_.rank() == 0; }
  // Whether AdamW's state is sharded over the data-parallel replicas (ZeRO-1).
  bool Sharded() const { return config_.parallel().zero1() && config_.parallel().dp() > 1; }

  const TrainingConfig& config_;
  const TrainerOptions& options_;
  const PreparedData& data_;
  comm::Communicator& world_;

  comm::ParallelGroups groups_;
  std::unique_ptr<comm::Communicator> ep_forward_, ep_backward_;
  dualpipe::Schedule schedule_;
  std::vector<HostedModelStage> stages_;  // by path
  std::unique_ptr<data::Batcher> train_batcher_, val_batcher_;
  int64_t step_ = 0;
  int64_t tokens_ = 0;
  int data_shard_ = 0;
  int data_shards_ = 1;
};

absl::Status RankTrainer::Setup() {
  const ParallelConfig& parallel = config_.parallel();
  const comm::ParallelLayout layout{parallel.pp(), parallel.ep(), parallel.dp()};
  if (layout.size() != world_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("parallel: pp x ep x dp = ", parallel.pp(), " x ", parallel.ep(), " x ",
                     parallel.dp(), " = ", layout.size(), " ranks, the world has ", world_.size()));
  }
  ASSIGN_OR_RETURN(groups_, comm::BuildParallelGroups(world_, layout));
  if (parallel.ep() > 1) {
    // The overlapped pairs' forward and backward all-to-alls run concurrently, one on each.
    ASSIGN_OR_RETURN(ep_forward_, groups_.expert->Split(0, groups_.coordinates.ep));
    ASSIGN_OR_RETURN(ep_backward_, groups_.expert->Split(0, groups_.coordinates.ep));
  }
  ASSIGN_OR_RETURN(schedule_, dualpipe::GenerateSchedule(parallel.schedule(), parallel.pp(),
                                                         parallel.microbatches()));
  data_shard_ = groups_.coordinates.dp * parallel.ep() + groups_.coordinates.ep;
  data_shards_ = parallel.dp() * parallel.ep();
  RETURN_IF_ERROR(BuildStages());
  return BuildData();
}

absl::Status RankTrainer::BuildStages() {
  const model::ModelConfig& model = config_.model();
  const std::vector<std::pair<int, int>> layers = StageLayerRanges(config_);
  const int num_stages = static_cast<int>(layers.size());
  for (const dualpipe::HostedStage& hs :
       dualpipe::HostedStages(schedule_, groups_.coordinates.pp)) {
    if (static_cast<int>(stages_.size()) <= hs.path) stages_.resize(hs.path + 1);
    HostedModelStage& s = stages_[hs.path];
    s.hosted = hs;
    const model::StageRange range{layers[hs.stage].first, layers[hs.stage].second, hs.stage == 0,
                                  hs.stage == num_stages - 1};
    s.stage = std::make_unique<model::ModelStage<float>>(model, range, groups_.coordinates.ep,
                                                         config_.parallel().ep());
    const std::vector<model::Param<float>*> params = s.stage->Params();
    model::InitParams(params, model.init_std(), config_.seed());
    for (model::Param<float>* p : params) {
      if (p->trainable()) s.trainable.push_back(p);
    }
    for (model::Param<float>* p : s.stage->ReplicatedParams()) {
      if (p->trainable()) s.replicated.push_back(p);
    }
    const std::set<const model::Param<float>*> replicated(s.replicated.begin(), s.replicated.end());
    for (const model::Param<float>* p : s.trainable) {
      if (replicated.count(p) == 0) s.experts.insert(p);
    }
    // ZeRO-1: this replica's slice of the flat space.
    const int64_t flat_size = FlatSize(params);
    s.optimizer = std::make_unique<AdamW>(
        config_.optimizer(), params,
        Sharded() ? ShardOf(flat_size, groups_.coordinates.dp, config_.parallel().dp())
                  : FlatRange{0, flat_size});
  }
  return absl::OkStatus();
}

absl::Status RankTrainer::BuildData() {
  const int batch =
      config_.parallel().microbatches() * config_.parallel().sequences_per_microbatch();
  data::BatcherOptions options{.seq_len = config_.data().seq_len(),
                               .batch_size = batch,
                               .dp_rank = data_shard_,
                               .dp_size = data_shards_,
                               .seed = config_.seed()};
  ASSIGN_OR_RETURN(std::vector<int32_t> train,
                   data::PackDocuments(*data_.corpus, data::Split::kTrain,
                                       config_.data().validation_fraction(), data_.eos_id));
  absl::StatusOr<data::Batcher> batcher = data::Batcher::Create(std::move(train), options);
  if (!batcher.ok()) return With(batcher.status(), "training data");
  train_batcher_ = std::make_unique<data::Batcher>(*std::move(batcher));
  if (config_.data().validation_fraction() > 0) {
    absl::StatusOr<std::vector<int32_t>> val =
        data::PackDocuments(*data_.corpus, data::Split::kValidation,
                            config_.data().validation_fraction(), data_.eos_id);
    if (!val.ok()) return With(val.status(), "validation data");
    options.shuffle = false;
    absl::StatusOr<data::Batcher> val_batcher = data::Batcher::Create(*std::move(val), options);
    if (!val_batcher.ok()) return With(val_batcher.status(), "validation data");
    val_batcher_ = std::make_unique<data::Batcher>(*std::move(val_batcher));
  }
  return absl::OkStatus();
}

absl::StatusOr<RankTrainer::StepStats> RankTrainer::Step(data::Batcher& batcher, bool update,
                                                         core::TraceRecorder* trace) {
  const ParallelConfig& parallel = config_.parallel();
  const int seq_len = config_.data().seq_len();
  const int per_mb = parallel.sequences_per_microbatch();
  const int microbatches = parallel.microbatches();
  std::vector<int32_t> rows;
  batcher.Next(&rows);  // [microbatches * per_mb, seq_len + 1]
  std::vector<model::MicroBatch> batches(microbatches);
  const double loss_scale =
      1.0 / (static_cast<double>(microbatches) * parallel.ep() * parallel.dp());
  for (int m = 0; m < microbatches; ++m) {
    model::MicroBatch& mb = batches[m];
    mb.seq_len = seq_len;
    mb.loss_scale = loss_scale;
    for (int s = 0; s < per_mb; ++s) {
      const int32_t* row = rows.data() + static_cast<size_t>(m * per_mb + s) * (seq_len + 1);
      mb.tokens.insert(mb.tokens.end(), row, row + seq_len);
      mb.targets.insert(mb.targets.end(), row + 1, row + seq_len + 1);
    }
  }
  const absl::Time start = absl::Now();
  std::vector<dualpipe::Stage*> stage_ptrs(stages_.size(), nullptr);
  for (size_t path = 0; path < stages_.size(); ++path) {
    HostedModelStage& s = stages_[path];
    if (s.stage == nullptr) continue;
    std::vector<model::MicroBatch> mine(
        batches.begin() + s.hosted.first_microbatch,
        batches.begin() + s.hosted.first_microbatch + s.hosted.num_microbatches);
    model::EpComms ep;
    if (parallel.ep() > 1) ep = {ep_forward_.get(), ep_backward_.get()};
    ASSIGN_OR_RETURN(s.adapter, model::StageAdapter::Create(s.stage.get(), std::move(mine), ep));
    stage_ptrs[path] = s.adapter.get();
  }
  std::vector<std::unique_ptr<FailingStage>> failing;
  if (update && options_.fail_at_step == step_ + 1 && options_.fail_rank == world_.rank()) {
    for (dualpipe::Stage*& stage : stage_ptrs) {
      if (stage == nullptr) continue;
      failing.push_back(std::make_unique<FailingStage>(
          stage, absl::StrCat("injected failure in step ", step_ + 1)));
      stage = failing.back().get();
    }
  }
  ASSIGN_OR_RETURN(
      std::unique_ptr<dualpipe::Executor> executor,
      dualpipe::Executor::Create(schedule_, stage_ptrs, groups_.pipeline.get(), {.trace = trace}));
  ASSIGN_OR_RETURN(dualpipe::StepResult result, executor->Step());
  StepStats stats;
  double loss = 0;
  for (float l : result.losses) loss += l;
  ASSIGN_OR_RETURN(stats.loss, MeanOverPipelines(loss / microbatches));
  for (const dualpipe::OpTiming& op : result.timeline) {
    stats.compute_seconds += op.end - op.start - op.wait;
    stats.wait_seconds += op.wait;
  }
  if (!update) {
    for (HostedModelStage& s : stages_) {
      if (s.stage == nullptr) continue;
      for (model::Param<float>* p : s.trainable) p->grad.setZero();
    }
    stats.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    return stats;
  }
  RETURN_IF_ERROR(With(SyncGradients(), "gradient all-reduce"));
  ASSIGN_OR_RETURN(stats.grad_norm, GlobalGradNorm());
  const double clip = config_.optimizer().clip_grad_norm();
  const float scale =
      clip > 0 && stats.grad_norm > clip ? static_cast<float>(clip / (stats.grad_norm + 1e-6)) : 1;
  const double lr = LearningRate(config_.optimizer(), static_cast<int>(step_), config_.steps());
  for (HostedModelStage& s : stages_) {
    if (s.stage != nullptr) s.optimizer->Step(lr, scale);
  }
  if (Sharded()) RETURN_IF_ERROR(With(GatherParameters(), "parameter all-gather"));
  ASSIGN_OR_RETURN(stats.balance, UpdateExpertBias(step_ + 1));
  stats.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return stats;
}

absl::Status RankTrainer::SyncGradients() {
  // DualPipe: rank r's path-0 stage and rank PP-1-r's path-1 stage are copies of one model stage.
  if (schedule_.name == "dualpipe") {
    const int peer = config_.parallel().pp() - 1 - groups_.coordinates.pp;
    std::vector<float> mine0 = FlattenGrads(stages_[0].trainable);
    std::vector<float> mine1 = FlattenGrads(stages_[1].trainable);
    std::vector<float> theirs0(mine1.size()), theirs1(mine0.size());
    // Their path-0 stage is a copy of our path-1 stage and the other way round.
    const comm::SendOp sends[] = {{comm::ConstHostBuffer<float>(mine0), peer, 0},
                                  {comm::ConstHostBuffer<float>(mine1), peer, 1}};
    const comm::RecvOp recvs[] = {{comm::HostBuffer<float>(theirs1), peer, 1},
                                  {comm::HostBuffer<float>(theirs0), peer, 0}};
    RETURN_IF_ERROR(groups_.pipeline->BatchP2P(sends, recvs));
    for (size_t i = 0; i < mine0.size(); ++i) mine0[i] += theirs1[i];
    for (size_t i = 0; i < mine1.size(); ++i) mine1[i] += theirs0[i];
    UnflattenGrads(mine0, stages_[0].trainable);
    UnflattenGrads(mine1, stages_[1].trainable);
  }
  for (HostedModelStage& s : stages_) {
    if (s.stage == nullptr) continue;
    if (config_.parallel().ep() > 1) {
      RETURN_IF_ERROR(model::AllReduceGradients(*groups_.expert, s.replicated));
    }
    if (config_.parallel().dp() > 1) {
      std::vector<float> flat = FlattenGrads(s.trainable);
      if (Sharded()) {
        RETURN_IF_ERROR(ReduceScatterGradients(flat));
      } else {
        for (size_t begin = 0; begin < flat.size(); begin += kBucketFloats) {
          const size_t count = std::min(kBucketFloats, flat.size() - begin);
          const comm::Buffer bucket{flat.data() + begin, count, core::DType::kF32,
                                    core::Device::kHost};
          RETURN_IF_ERROR(groups_.data->AllReduce(bucket, bucket, comm::ReduceOp::kSum));
        }
      }
      UnflattenGrads(flat, s.trainable);
    }
  }
  return absl::OkStatus();
}

absl::Status RankTrainer::ReduceScatterGradients(std::vector<float>& flat) {
  const int dp = config_.parallel().dp();
  const int64_t size = static_cast<int64_t>(flat.size());
  const FlatRange mine = ShardOf(size, groups_.coordinates.dp, dp);
  std::vector<size_t> counts(dp);
  std::vector<float> part;
  for (int64_t begin = 0; begin < size; begin += static_cast<int64_t>(kBucketFloats)) {
    const int64_t end = std::min(size, begin + static_cast<int64_t>(kBucketFloats));
    for (int r = 0; r < dp; ++r) {
      const FlatRange shard = ShardOf(size, r, dp);
      counts[r] = static_cast<size_t>(
          std::max<int64_t>(0, std::min(end, shard.end) - std::max(begin, shard.begin)));
    }
    part.resize(counts[groups_.coordinates.dp]);
    RETURN_IF_ERROR(groups_.data->ReduceScatter(
        comm::ConstBuffer(flat.data() + begin, end - begin, core::DType::kF32, core::Device::kHost),
        comm::HostBuffer<float>(part), counts, comm::ReduceOp::kSum));
    std::copy(part.begin(), part.end(), flat.begin() + std::max(begin, mine.begin));
  }
  return absl::OkStatus();
}

absl::Status RankTrainer::GatherParameters() {
  const int dp = config_.parallel().dp();
  // Every replica sends as many elements as the longest slice, the shorter ones padded, in
  // buckets of about kBucketFloats gathered floats.
  const int64_t chunk = std::max<int64_t>(1, kBucketFloats / dp);
  std::vector<float> mine, all;
  for (HostedModelStage& s : stages_) {
    if (s.stage == nullptr) continue;
    const int64_t flat_size = s.optimizer->flat_size();
    const int64_t slice = ShardOf(flat_size, 0, dp).size();
    for (int64_t offset = 0; offset < slice; offset += chunk) {
      const int64_t count = std::min(chunk, slice - offset);
      mine.assign(count, 0.0f);
      all.resize(count * dp);
      ReadValues(s.trainable, SubRange(s.optimizer->shard(), offset, count), mine.data());
      RETURN_IF_ERROR(groups_.data->AllGather(comm::ConstHostBuffer<float>(mine),
                                              comm::HostBuffer<float>(all)));
      for (int r = 0; r < dp; ++r) {
        if (r == groups_.coordinates.dp) continue;
        WriteValues(s.trainable, SubRange(ShardOf(flat_size, r, dp), offset, count),
                    all.data() + r * count);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status RankTrainer::GatherOptimizerState(HostedModelStage& s, std::vector<float>* exp_avg,
                                               std::vector<float>* exp_avg_sq) {
  const int dp = config_.parallel().dp();
  AdamW& adamw = *s.optimizer;
  if (groups_.coordinates.dp != 0) {
    if (adamw.shard().size() == 0) return absl::OkStatus();
    const comm::SendOp sends[] = {{comm::ConstHostBuffer<float>(adamw.exp_avg()), 0, 0},
                                  {comm::ConstHostBuffer<float>(adamw.exp_avg_sq()), 0, 1}};
    return groups_.data->BatchP2P(sends, {});
  }
  exp_avg->resize(adamw.flat_size());
  exp_avg_sq->resize(adamw.flat_size());
  std::copy(adamw.exp_avg().begin(), adamw.exp_avg().end(), exp_avg->begin());
  std::copy(adamw.exp_avg_sq().begin(), adamw.exp_avg_sq().end(), exp_avg_sq->begin());
  std::vector<comm::RecvOp> recvs;
  for (int r = 1; r < dp; ++r) {
    const FlatRange theirs = ShardOf(adamw.flat_size(), r, dp);
    if (theirs.size() == 0) continue;
    recvs.push_back(
        {comm::HostBuffer<float>(absl::MakeSpan(*exp_avg).subspan(theirs.begin, theirs.size())), r,
         0});
    recvs.push_back(
        {comm::HostBuffer<float>(absl::MakeSpan(*exp_avg_sq).subspan(theirs.begin, theirs.size())),
         r, 1});
  }
  return groups_.data->BatchP2P({}, recvs);
}

absl::StatusOr<double> RankTrainer::GlobalGradNorm() {
  // Count every parameter once: one copy of each DualPipe stage, the shared weights on expert
  // rank 0, and of the gradients the data-parallel replicas agree on, replica d's ZeRO-1 slice
  // (the only part a ZeRO-1 replica has summed; the same partition without ZeRO-1, so that the
  // norm is the same bits either way).
  const int dp = config_.parallel().dp();
  double sum = 0;
  for (HostedModelStage& s : stages_) {
    if (s.stage == nullptr) continue;
    if (schedule_.name == "dualpipe" && s.hosted.route != 0) continue;
    const FlatRange shard = ShardOf(FlatSize(s.trainable), groups_.coordinates.dp, dp);
    ForEachPiece(s.trainable, shard, [&](model::Param<float>& p, int64_t at, int64_t, int64_t n) {
      if (s.experts.count(&p) == 0 && groups_.coordinates.ep != 0) return;  // shared: ep 0's
      const float* grad = p.grad.data() + at;
      for (int64_t i = 0; i < n; ++i) sum += double{grad[i]} * grad[i];
    });
  }
  // comm moves f32: the sum travels as a high and a low part, and every rank adds the world's
  // parts in rank order, so that the norm does not depend on the backend's reduction order.
  const float parts[2] = {static_cast<float>(sum),
                          static_cast<float>(sum - static_cast<float>(sum))};
  std::vector<float> all(2 * world_.size());
  RETURN_IF_ERROR(world_.AllGather(comm::ConstHostBuffer<float>(absl::MakeConstSpan(parts)),
                                   comm::HostBuffer<float>(all)));
  double total = 0;
  for (size_t i = 0; i < all.size(); i += 2) total += double{all[i]} + double{all[i + 1]};
  return std::sqrt(std::max(0.0, total));
}

absl::StatusOr<double> RankTrainer::MeanOverPipelines(double value) {
  float v = static_cast<float>(value);
  const comm::Buffer buffer{&v, 1, core::DType::kF32, core::Device::kHost};
  RETURN_IF_ERROR(groups_.expert->AllReduce(buffer, buffer, comm::ReduceOp::kSum));
  RETURN_IF_ERROR(groups_.data->AllReduce(buffer, buffer, comm::ReduceOp::kSum));
  return v / (config_.parallel().ep() * config_.parallel().dp());
}

absl::StatusOr<double> RankTrainer::UpdateExpertBias(int64_t step) {
  const model::ModelConfig& model = config_.model();
  const int experts = model.moe().num_routed_experts();
  // [path] -> the stage's MoE loads, flattened block by block (dense blocks contribute nothing).
  std::vector<std::vector<int64_t>> flat(stages_.size());
  for (size_t path = 0; path < stages_.size(); ++path) {
    const HostedModelStage& s = stages_[path];
    if (s.stage == nullptr) continue;
    for (const std::vector<int64_t>& block : s.adapter->loads()) {
      flat[path].insert(flat[path].end(), block.begin(), block.end());
    }
    const comm::Buffer buffer{flat[path].data(), flat[path].size(), core::DType::kI64,
                              core::Device::kHost};
    RETURN_IF_ERROR(groups_.expert->AllReduce(buffer, buffer, comm::ReduceOp::kSum));
    RETURN_IF_ERROR(groups_.data->AllReduce(buffer, buffer, comm::ReduceOp::kSum));
  }
  if (schedule_.name == "dualpipe") {
    const int peer = config_.parallel().pp() - 1 - groups_.coordinates.pp;
    std::vector<int64_t> theirs0(flat[1].size()), theirs1(flat[0].size());
    const comm::SendOp sends[] = {{comm::ConstHostBuffer<int64_t>(flat[0]), peer, 2},
                                  {comm::ConstHostBuffer<int64_t>(flat[1]), peer, 3}};
    const comm::RecvOp recvs[] = {{comm::HostBuffer<int64_t>(theirs1), peer, 3},
                                  {comm::HostBuffer<int64_t>(theirs0), peer, 2}};
    RETURN_IF_ERROR(groups_.pipeline->BatchP2P(sends, recvs));
    for (size_t i = 0; i < flat[0].size(); ++i) flat[0][i] += theirs1[i];
    for (size_t i = 0; i < flat[1].size(); ++i) flat[1][i] += theirs0[i];
  }
  double worst = 1;
  std::map<int, std::vector<int64_t>> layer_loads;  // model layer -> global loads
  for (size_t path = 0; path < stages_.size(); ++path) {
    HostedModelStage& s = stages_[path];
    if (s.stage == nullptr) continue;
    size_t offset = 0;
    std::vector<model::DecoderBlock<float>>& blocks = s.stage->blocks();
    for (size_t b = 0; b < blocks.size(); ++b) {
      if (s.adapter->loads()[b].empty()) continue;
      std::vector<int64_t> loads(flat[path].begin() + offset,
                                 flat[path].begin() + offset + experts);
      offset += experts;
      blocks[b].UpdateMoeBias(loads);
      int64_t total = 0, max = 0;
      for (int64_t l : loads) {
        total += l;
        max = std::max(max, l);
      }
      if (total > 0) worst = std::max(worst, static_cast<double>(max) * experts / total);
      layer_loads[s.stage->range().begin_layer + static_cast<int>(b)] = std::move(loads);
    }
  }
  // The worst layer's max / mean load over the whole model.
  float w = static_cast<float>(worst);
  const comm::Buffer buffer{&w, 1, core::DType::kF32, core::Device::kHost};
  RETURN_IF_ERROR(groups_.pipeline->AllReduce(buffer, buffer, comm::ReduceOp::kMax));
  const int every = config_.logging().expert_loads_every();
  if (every > 0 && step % every == 0) RETURN_IF_ERROR(WriteExpertLoads(step, layer_loads));
  return w;
}

absl::Status RankTrainer::WriteExpertLoads(int64_t step,
                                           const std::map<int, std::vector<int64_t>>& layer_loads) {
  const model::ModelConfig& model = config_.model();
  const int experts = model.moe().num_routed_experts();
  const int moe_layers = model.num_layers() - model.first_k_dense_layers();
  // Every MoE layer's row, filled by the pipeline rank that holds the layer (its first copy).
  std::vector<int64_t> table(static_cast<size_t>(moe_layers) * experts, 0);
  for (const auto& [layer, loads] : layer_loads) {
    const int row = layer - model.first_k_dense_layers();
    bool first_copy = true;
    for (const HostedModelStage& s : stages_) {
      if (s.stage != nullptr && s.hosted.route != 0 && schedule_.name == "dualpipe" &&
          layer >= s.stage->range().begin_layer && layer < s.stage->range().end_layer) {
        first_copy = false;
      }
    }
    if (first_copy) std::copy(loads.begin(), loads.end(), table.begin() + row * experts);
  }
  const comm::Buffer buffer{table.data(), table.size(), core::DType::kI64, core::Device::kHost};
  RETURN_IF_ERROR(groups_.pipeline->AllReduce(buffer, buffer, comm::ReduceOp::kSum));
  if (!IsWorldZero()) return absl::OkStatus();
  const fs::path dir = fs::path(options_.output_dir) / "expert_loads";
  std::error_code error;
  fs::create_directories(dir, error);
  std::string csv;
  for (int row = 0; row < moe_layers; ++row) {
    for (int e = 0; e < experts; ++e) {
      absl::StrAppend(&csv, e == 0 ? "" : ",", table[static_cast<size_t>(row) * experts + e]);
    }
    csv += "\n";
  }
  return WriteFileSynced((dir / absl::StrFormat("step-%08d.csv", step)).string(), csv);
}

absl::Status RankTrainer::SaveCheckpoint(int64_t step) {
  const std::string dir = (fs::path(options_.output_dir) / "checkpoints").string();
  // World rank 0 makes the temporary directory and tells the others its name by its length.
  std::string tmp;
  if (IsWorldZero()) {
    ASSIGN_OR_RETURN(tmp, BeginCheckpoint(dir, step));
  }
  std::vector<char> name(4096, 0);
  std::copy(tmp.begin(), tmp.end(), name.begin());
  const comm::Buffer buffer{name.data(), name.size(), core::DType::kU8, core::Device::kHost};
  RETURN_IF_ERROR(world_.Broadcast(buffer, 0));
  tmp = std::string(name.data());
  nlohmann::json weight_map = nlohmann::json::object();
  int64_t total_bytes = 0;
  for (HostedModelStage& s : stages_) {
    if (s.stage == nullptr) continue;
    if (schedule_.name == "dualpipe" && s.hosted.route != 0) continue;
    // AdamW's moments of the whole flat space: the optimizer's own, or gathered (ZeRO-1).
    std::vector<float> exp_avg, exp_avg_sq;
    if (Sharded()) {
      RETURN_IF_ERROR(With(GatherOptimizerState(s, &exp_avg, &exp_avg_sq), "optimizer gather"));
    }
    if (groups_.coordinates.dp != 0) continue;
    std::vector<model::Param<float>*> mine;
    for (model::Param<float>* p : s.stage->Params()) {
      if (groups_.coordinates.ep == 0 || s.experts.count(p) != 0) mine.push_back(p);
    }
    std::vector<std::pair<std::string, core::TensorView>> tensors;
    for (model::Param<float>* p : mine) {
      tensors.emplace_back(
          p->name, core::TensorView(p->value.data(), core::DType::kF32, core::Shape(p->shape())));
    }
    const std::string file = ShardName("model", s.hosted.stage);
    RETURN_IF_ERROR(
        model::WriteSafetensors((fs::path(tmp) / file).string(), tensors, {{"format", "pt"}}));
    const absl::Span<float> m = Sharded() ? absl::MakeSpan(exp_avg) : s.optimizer->exp_avg();
    const absl::Span<float> v = Sharded() ? absl::MakeSpan(exp_avg_sq) : s.optimizer->exp_avg_sq();
    RETURN_IF_ERROR(
        model::WriteSafetensors((fs::path(tmp) / ShardName("optimizer", s.hosted.stage)).string(),
                                s.optimizer->State(m, v)));
  }
  // The weight map: every rank reports its files' tensors to world rank 0 through the file
  // system (the directory is shared), after a barrier.
  RETURN_IF_ERROR(world_.Barrier());
  if (IsWorldZero()) {
    std::error_code error;
    for (const fs::directory_entry& entry : fs::directory_iterator(tmp, error)) {
      const std::string file = entry.path().filename().string();
      if (file.rfind("model-", 0) != 0) continue;
      ASSIGN_OR_RETURN(model::SafetensorsFile shard, model::ReadSafetensors(entry.path().string()));
      for (const auto& [tensor_name, tensor] : shard.tensors) {
        weight_map[tensor_name] = file;
        total_bytes += static_cast<int64_t>(tensor.num_bytes());
      }
    }
    nlohmann::json index;
    index["metadata"]["total_size"] = total_bytes;
    index["weight_map"] = weight_map;
    RETURN_IF_ERROR(
        WriteFileSynced((fs::path(tmp) / "model.safetensors.index.json").string(), index.dump(2)));
    std::string config_text;
    google::protobuf::TextFormat::PrintToString(config_, &config_text);
    RETURN_IF_ERROR(WriteFileSynced((fs::path(tmp) / "config.textproto").string(), config_text));
    std::string model_text;
    google::protobuf::TextFormat::PrintToString(config_.model(), &model_text);
    RETURN_IF_ERROR(WriteFileSynced((fs::path(tmp) / "model.textproto").string(), model_text));
    RETURN_IF_ERROR(
        WriteFileSynced((fs::path(tmp) / "tokenizer.json").string(), data_.tokenizer_json));
  }
  // Data positions of every shard, gathered to world rank 0.
  const data::DataState& mine = train_batcher_->state();
  int64_t position[2] = {mine.epoch, mine.position};
  std::vector<int64_t> all(2 * world_.size());
  RETURN_IF_ERROR(
      world_.AllGather(comm::ConstHostBuffer<int64_t>(position), comm::HostBuffer<int64_t>(all)));
  if (IsWorldZero()) {
    TrainerState state;
    state.step = step;
    state.tokens = tokens_;
    state.model_name = config_.model().name();
    state.data_states.resize(data_shards_);
    for (int r = 0; r < world_.size(); ++r) {
      const comm::ParallelCoordinates c = comm::CoordinatesOf(groups_.layout, r);
      const data::DataState d{all[2 * r], all[2 * r + 1]};
      state.data_states[c.dp * config_.parallel().ep() + c.ep] = d.Serialize();
    }
    RETURN_IF_ERROR(
        WriteFileSynced((fs::path(tmp) / "trainer_state.json").string(), state.ToJson()));
    RETURN_IF_ERROR(CommitCheckpoint(dir, tmp, step, config_.checkpoint().keep()));
  }
  return world_.Barrier();
}

absl::Status RankTrainer::LoadCheckpoint(const std::string& dir) {
  ASSIGN_OR_RETURN(
      TrainerState state,
      TrainerState::FromJson(ReadWholeFile((fs::path(dir) / "trainer_state.json").string())));
  if (state.model_name != config_.model().name()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, " holds model '", state.model_name,
                                                   "', this run trains '", config_.model().name(),
                                                   "'"));
  }
  if (static_cast<int>(state.data_states.size()) != data_shards_) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, " was written with ", state.data_states.size(),
                     " data shards (ep x dp), this run has ", data_shards_));
  }
  for (HostedModelStage& s : stages_) {
    if (s.stage == nullptr) continue;
    // Model files: the shared weights from expert rank 0's file, this rank's experts from its own.
    std::map<std::string, core::Tensor> storage;
    std::map<std::string, core::TensorView> tensors;
    std::set<int> files = {0, groups_.coordinates.ep};
    for (int ep : files) {
      const std::string path =
          (fs::path(dir) / absl::StrCat("model-stage", s.hosted.stage, "-ep", ep, ".safetensors"))
              .string();
      ASSIGN_OR_RETURN(auto views, ReadTensors(path, &storage));
      tensors.insert(views.begin(), views.end());
    }
    for (model::Param<float>* p : s.stage->Params()) {
      auto it = tensors.find(p->name);
      if (it == tensors.end() || it->second.shape() != core::Shape(p->shape()) ||
          it->second.dtype() != core::DType::kF32) {
        return absl::InvalidArgumentError(absl::StrCat(dir, ": no f32 tensor '", p->name,
                                                       "' of shape [", p->value.rows(), ", ",
                                                       p->value.cols(), "]: another model?"));
      }
      std::memcpy(p->value.data(), it->second.raw_data(), it->second.num_bytes());
    }
    // The file holds the whole state (as the unsharded optimizer writes it); a ZeRO-1 optimizer
    // keeps its slice.
    std::map<std::string, core::Tensor> optimizer_storage;
    ASSIGN_OR_RETURN(auto optimizer,
                     ReadTensors((fs::path(dir) / ShardName("optimizer", s.hosted.stage)).string(),
                                 &optimizer_storage));
    RETURN_IF_ERROR(With(s.optimizer->LoadState(optimizer), dir));
  }
  ASSIGN_OR_RETURN(data::DataState data_state,
                   data::DataState::Parse(state.data_states[data_shard_]));
  RETURN_IF_ERROR(train_batcher_->Restore(data_state));
  step_ = state.step;
  tokens_ = state.tokens;
  return absl::OkStatus();
}

absl::StatusOr<TrainSummary> RankTrainer::Run() {
  const std::string checkpoints = (fs::path(options_.output_dir) / "checkpoints").string();
  auto setup = [&]() -> absl::Status {
    RETURN_IF_ERROR(Setup());
    if (!options_.resume) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto found, ListCheckpoints(checkpoints));
    if (found.empty()) {
      return absl::NotFoundError(absl::StrCat("--resume: no checkpoint under ", checkpoints));
    }
    return LoadCheckpoint(found.back().second);
  };
  if (absl::Status status = setup(); !status.ok()) {
    status.SetPayload(kSetupErrorUrl, absl::Cord("1"));
    return status;
  }
  absl::StatusOr<TrainSummary> summary = Loop(checkpoints);
  if (summary.ok()) return summary;
  return NameLostRank(summary.status());
}

absl::Status RankTrainer::NameLostRank(const absl::Status& status) {
  // A failed pipeline, expert or data group names the peer by its rank in that group. If a rank
  // has left (or stopped answering), a barrier over the world fails too, naming it by world rank.
  if (!absl::IsUnavailable(status) && !absl::IsDeadlineExceeded(status) &&
      !absl::IsFailedPrecondition(status)) {
    return status;
  }
  const absl::Status probe = world_.Barrier();
  if (probe.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(status.message(), " (world: ", probe.message(), ")"));
}

absl::StatusOr<TrainSummary> RankTrainer::Loop(const std::string& checkpoints) {
  std::unique_ptr<MetricsWriter> metrics;
  if (IsWorldZero()) {
    ASSIGN_OR_RETURN(metrics, MetricsWriter::Open(options_.output_dir, options_.resume));
  }
  // World rank 0 measures the peak while the others wait, so that no measurement competes with
  // another rank's for the cores.
  float peak = static_cast<float>(options_.peak_gflops);
  if (peak <= 0) {
    if (IsWorldZero()) peak = static_cast<float>(MeasurePeak());
    const comm::Buffer peak_buffer{&peak, 1, core::DType::kF32, core::Device::kHost};
    RETURN_IF_ERROR(world_.Broadcast(peak_buffer, 0));
  }
  const int64_t tokens_per_step = static_cast<int64_t>(config_.parallel().microbatches()) *
                                  config_.parallel().sequences_per_microbatch() *
                                  config_.data().seq_len() * data_shards_;
  const double flops_per_token = TrainingFlopsPerToken(config_.model(), config_.data().seq_len());
  ProgressReporter progress(config_.steps(), options_.progress_bar && IsWorldZero());
  progress.Start(step_);

  TrainSummary summary;
  const int log_every = std::max(1, config_.logging().log_every());
  auto evaluate = [&]() -> absl::StatusOr<std::optional<double>> {
    if (val_batcher_ == nullptr) return std::nullopt;
    const int rounds = std::max(
        1, config_.logging().eval_microbatches() / std::max(1, config_.parallel().microbatches()));
    RETURN_IF_ERROR(val_batcher_->Restore(data::DataState{}));
    double sum = 0;
    for (int r = 0; r < rounds; ++r) {
      ASSIGN_OR_RETURN(StepStats stats, Step(*val_batcher_, /*update=*/false, nullptr));
      sum += stats.loss;
    }
    return sum / rounds;
  };

  while (step_ < config_.steps()) {
    const int64_t number = step_ + 1;
    std::unique_ptr<core::TraceRecorder> trace;
    if (number >= options_.trace_first_step && number <= options_.trace_last_step) {
      trace = std::make_unique<core::TraceRecorder>();
    }
    ASSIGN_OR_RETURN(StepStats stats, Step(*train_batcher_, /*update=*/true, trace.get()));
    if (!std::isfinite(stats.loss) || !std::isfinite(stats.grad_norm)) {
      return absl::InternalError(absl::StrCat("step ", number, ": the loss (", stats.loss,
                                              ") or gradient norm (", stats.grad_norm,
                                              ") is not finite; lower optimizer.lr?"));
    }
    step_ = number;
    tokens_ += tokens_per_step;
    summary.losses.push_back(static_cast<float>(stats.loss));
    summary.final_loss = stats.loss;
    if (trace != nullptr) {
      const fs::path dir = fs::path(options_.output_dir) / "traces";
      std::error_code error;
      fs::create_directories(dir, error);
      RETURN_IF_ERROR(trace->WriteFile(
          (dir / absl::StrFormat("step-%d-rank-%d.json", number, world_.rank())).string()));
    }
    // Every rank learns whether any was asked to stop.
    int32_t stop =
        (options_.stop != nullptr && options_.stop->load()) || step_ == options_.stop_after_step
            ? 1
            : 0;
    const comm::Buffer stop_buffer{&stop, 1, core::DType::kI32, core::Device::kHost};
    RETURN_IF_ERROR(world_.AllReduce(stop_buffer, stop_buffer, comm::ReduceOp::kMax));
    const bool last = step_ == config_.steps() || stop != 0;
    const int eval_every = config_.logging().eval_every();
    std::optional<double> val_loss;
    if (last || (eval_every > 0 && step_ % eval_every == 0)) {
      ASSIGN_OR_RETURN(val_loss, evaluate());
      if (val_loss.has_value()) summary.val_loss = *val_loss;
    }
    if (metrics != nullptr && (step_ % log_every == 0 || last || val_loss.has_value())) {
      StepMetrics m;
      m.step = step_;
      m.loss = stats.loss;
      m.val_loss = val_loss;
      m.lr = LearningRate(config_.optimizer(), static_cast<int>(step_ - 1), config_.steps());
      m.grad_norm = stats.grad_norm;
      m.tokens_per_second = tokens_per_step / stats.seconds;
      m.mfu = m.tokens_per_second * flops_per_token / (peak * 1e9);
      m.expert_balance = stats.balance;
      m.compute_seconds = stats.compute_seconds;
      m.wait_seconds = stats.wait_seconds;
      m.step_seconds = stats.seconds;
      m.tokens = tokens_;
      RETURN_IF_ERROR(metrics->Write(m));
      progress.Report(m);
    }
    const int every = config_.checkpoint().every_steps();
    if (last || (every > 0 && step_ % every == 0)) {
      RETURN_IF_ERROR(With(SaveCheckpoint(step_), "checkpoint"));
      summary.checkpoint = (fs::path(checkpoints) / CheckpointName(step_)).string();
    }
    if (stop != 0) break;
  }
  progress.Finish();
  if (metrics != nullptr) RETURN_IF_ERROR(metrics->WriteLossCurve());
  summary.steps = step_;
  for (HostedModelStage& s : stages_) {
    if (s.stage == nullptr) continue;
    summary.optimizer_state_floats +=
        s.optimizer->exp_avg().size() + s.optimizer->exp_avg_sq().size();
  }
  return summary;
}

}  // namespace

absl::StatusOr<PreparedData> PrepareData(const TrainingConfig& config,
                                         const std::string& output_dir) {
  PreparedData prepared;
  const DataConfig& data = config.data();
  ASSIGN_OR_RETURN(data::CorpusFiles files, data::ListCorpus(std::vector<std::string>(
                                                data.corpus().begin(), data.corpus().end())));
  const std::string cache_dir =
      data.cache_dir().empty() ? (fs::path(output_dir) / "cache").string() : data.cache_dir();
  std::error_code error;
  fs::create_directories(cache_dir, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot create ", cache_dir, ": ", error.message()));
  }
  std::string tokenizer_path = data.tokenizer();
  if (tokenizer_path.empty()) {
    // Trained once from the corpus; the file name keys the vocabulary size.
    tokenizer_path =
        (fs::path(cache_dir) / absl::StrCat("tokenizer-", data.tokenizer_vocab_size(), ".json"))
            .string();
    if (!fs::exists(tokenizer_path)) {
      ASSIGN_OR_RETURN(data::Corpus corpus, data::ReadCorpus(files));
      ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::BpeTrainer> trainer,
                       tokenizer::BpeTrainer::Create({.vocab_size = data.tokenizer_vocab_size()}));
      for (const data::Document& document : corpus.documents) {
        RETURN_IF_ERROR(trainer->AddText(document.text));
      }
      ASSIGN_OR_RETURN(std::string json, trainer->Train());
      const std::string tmp = tokenizer_path + ".tmp";
      RETURN_IF_ERROR(WriteFileSynced(tmp, json));
      fs::rename(tmp, tokenizer_path, error);
      if (error) return absl::UnavailableError(absl::StrCat("cannot write ", tokenizer_path));
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok,
                   tokenizer::Tokenizer::FromFile(tokenizer_path));
  if (tok->vocab_size() > config.model().vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the tokenizer ", tokenizer_path, " has ", tok->vocab_size(),
                     " tokens, more than the model's vocab_size ", config.model().vocab_size()));
  }
  std::optional<int32_t> eos = tok->eos_id();
  if (!eos.has_value()) eos = tok->TokenToId(kEosToken);
  if (!eos.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the tokenizer ", tokenizer_path, " names no EOS token"));
  }
  prepared.eos_id = *eos;
  prepared.tokenizer_json = ReadWholeFile(tokenizer_path);
  data::CacheInfo info;
  ASSIGN_OR_RETURN(
      data::TokenizedCorpus corpus,
      data::LoadOrTokenize(files, *tok, (fs::path(cache_dir) / "corpus.tokens").string(),
                           /*threads=*/0, &info));
  std::vector<int64_t> counts(tok->vocab_size(), 0);
  for (int32_t id : corpus.tokens) {
    if (id >= 0 && id < tok->vocab_size()) ++counts[id];
  }
  for (int64_t count : counts) {
    if (count == 0) continue;
    const double p = static_cast<double>(count) / corpus.tokens.size();
    prepared.unigram_entropy -= p * std::log(p);
  }
  prepared.summary = absl::StrCat(corpus.num_documents(), " documents, ", corpus.tokens.size(),
                                  " tokens from ", files.files.size(), " files (",
                                  files.skipped_not_text, " not text, skipped); vocabulary ",
                                  tok->vocab_size(), " (", tokenizer_path, "); unigram entropy ",
                                  absl::StrFormat("%.3f", prepared.unigram_entropy), " nats/token");
  prepared.tokenizer = std::move(tok);
  prepared.corpus = std::make_shared<data::TokenizedCorpus>(std::move(corpus));
  return prepared;
}

absl::StatusOr<TrainSummary> TrainRank(const TrainingConfig& config, const TrainerOptions& options,
                                       const PreparedData& data, comm::Communicator& world) {
  RankTrainer trainer(config, options, data, world);
  absl::StatusOr<TrainSummary> summary = trainer.Run();
  if (!summary.ok()) {
    absl::Status status(summary.status().code(),
                        absl::StrCat("rank ", world.rank(), ": ", summary.status().message()));
    if (IsSetupError(summary.status())) status.SetPayload(kSetupErrorUrl, absl::Cord("1"));
    return status;
  }
  return summary;
}

double MeasurePeakGflops() { return MeasurePeak(); }

int SetBlasThreadsPerRank(int ranks_per_machine) {
  const char* env = std::getenv("OPENBLAS_NUM_THREADS");
  if (env != nullptr && *env != '\0') return openblas_get_num_threads();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = std::max(1, cores / std::max(1, ranks_per_machine));
  openblas_set_num_threads(threads);
  return threads;
}

bool IsSetupError(const absl::Status& status) {
  return status.GetPayload(kSetupErrorUrl).has_value();
}

absl::Status CheckResume(const TrainingConfig& config, const std::string& output_dir) {
  const std::string checkpoints = (fs::path(output_dir) / "checkpoints").string();
  ASSIGN_OR_RETURN(auto found, ListCheckpoints(checkpoints));
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("--resume: no checkpoint under ", checkpoints));
  }
  const std::string& dir = found.back().second;
  const std::string state_path = (fs::path(dir) / "trainer_state.json").string();
  absl::StatusOr<TrainerState> state = TrainerState::FromJson(ReadWholeFile(state_path));
  if (!state.ok())
    return absl::InvalidArgumentError(absl::StrCat(state_path, ": ", state.status().message()));
  const std::string model_path = (fs::path(dir) / "model.textproto").string();
  model::ModelConfig theirs;
  if (!google::protobuf::TextFormat::ParseFromString(ReadWholeFile(model_path), &theirs)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--resume: ", model_path, " is not a model config"));
  }
  // Fields that only steer training (initialisation, the bias update, the balance loss) may change.
  google::protobuf::util::MessageDifferencer differ;
  const google::protobuf::Descriptor* model_type = model::ModelConfig::descriptor();
  const google::protobuf::Descriptor* moe_type = model::MoeConfig::descriptor();
  differ.IgnoreField(model_type->FindFieldByName("init_std"));
  differ.IgnoreField(moe_type->FindFieldByName("bias_update_speed"));
  differ.IgnoreField(moe_type->FindFieldByName("sequence_aux_loss_alpha"));
  std::string difference;
  differ.ReportDifferencesToString(&difference);
  if (!differ.Compare(theirs, config.model())) {
    const std::string first = difference.substr(0, difference.find('\n'));
    return absl::InvalidArgumentError(
        absl::StrCat("--resume: ", dir, " holds another model than this run's '",
                     config.model().name(), "' (checkpoint -> this run: ", first, ")"));
  }
  const int shards = config.parallel().ep() * config.parallel().dp();
  if (static_cast<int>(state->data_states.size()) != shards) {
    return absl::InvalidArgumentError(
        absl::StrCat("--resume: ", dir, " was written with ", state->data_states.size(),
                     " data shards (ep x dp), this run has ", shards));
  }
  // The model files are per model stage and expert rank: the stages' layers and ep must match
  // (the schedule and pp may change when they make the same stages).
  TrainingConfig written;
  if (!google::protobuf::TextFormat::ParseFromString(
          ReadWholeFile((fs::path(dir) / "config.textproto").string()), &written)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--resume: ", dir, "/config.textproto is not a training config"));
  }
  const auto layers = [](const std::vector<std::pair<int, int>>& ranges) {
    std::string text;
    for (const auto& [begin, end] : ranges)
      absl::StrAppend(&text, text.empty() ? "" : ",", end - begin);
    return text;
  };
  const std::string theirs_layers = layers(StageLayerRanges(written));
  const std::string our_layers = layers(StageLayerRanges(config));
  if (written.parallel().ep() != config.parallel().ep() || theirs_layers != our_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--resume: ", dir, " was written with ep=", written.parallel().ep(),
        " and model stages of ", theirs_layers, " layers, this run has ep=", config.parallel().ep(),
        " and stages of ", our_layers));
  }
  return absl::OkStatus();
}

namespace {

// Parameters of one decoder layer: attention (with its norms) and the MLP or MoE.
struct LayerParameters {
  int64_t replicated = 0;  // attention, norms, dense MLP, shared experts, gate
  int64_t routed = 0;      // every routed expert
  int64_t active = 0;      // what one token uses: replicated + top_k routed experts
};

LayerParameters CountLayer(const model::ModelConfig& config, int layer) {
  const int64_t h = config.hidden_size();
  const int64_t heads = config.num_heads();
  int64_t attention = 2 * h;  // the attention and MLP norms
  if (config.has_mla()) {
    const model::MlaConfig& mla = config.mla();
    const int64_t qk = mla.qk_nope_head_dim() + mla.qk_rope_head_dim();
    attention += mla.q_lora_rank() > 0
                     ? h * mla.q_lora_rank() + mla.q_lora_rank() + mla.q_lora_rank() * heads * qk
                     : h * heads * qk;
    attention += h * (mla.kv_lora_rank() + mla.qk_rope_head_dim()) + mla.kv_lora_rank() +
                 mla.kv_lora_rank() * heads * (mla.qk_nope_head_dim() + mla.v_head_dim()) +
                 heads * mla.v_head_dim() * h;
  } else {
    attention += 4 * h * heads * config.head_dim();
  }
  LayerParameters count;
  count.replicated = attention;
  if (model::IsMoeLayer(config, layer)) {
    const model::MoeConfig& moe = config.moe();
    const int64_t expert = 3 * h * moe.expert_intermediate_size();
    count.replicated += h * moe.num_routed_experts() + expert * moe.num_shared_experts();
    if (model::GateHasBias(moe, h)) count.replicated += moe.num_routed_experts();
    count.routed = expert * moe.num_routed_experts();
    count.active = count.replicated + expert * moe.top_k();
  } else {
    count.replicated += 3 * h * config.intermediate_size();
    count.active = count.replicated;
  }
  return count;
}

}  // namespace

StageParameterCount CountStageParameters(const model::ModelConfig& config, int begin_layer,
                                         int end_layer, bool has_embedding, bool has_head) {
  const int64_t h = config.hidden_size();
  StageParameterCount count;
  if (has_embedding) count.replicated += h * config.vocab_size();
  if (has_head) count.replicated += h + h * config.vocab_size();  // final norm and LM head
  for (int layer = begin_layer; layer < end_layer; ++layer) {
    const LayerParameters l = CountLayer(config, layer);
    count.replicated += l.replicated;
    count.routed_experts += l.routed;
  }
  return count;
}

ParameterCount CountParameters(const model::ModelConfig& config) {
  const StageParameterCount whole =
      CountStageParameters(config, 0, config.num_layers(), /*has_embedding=*/true,
                           /*has_head=*/true);
  ParameterCount count;
  count.total = whole.replicated + whole.routed_experts;
  count.active = whole.replicated;
  for (int layer = 0; layer < config.num_layers(); ++layer) {
    const LayerParameters l = CountLayer(config, layer);
    count.active += l.active - l.replicated;
  }
  return count;
}

double TrainingFlopsPerToken(const model::ModelConfig& config, int seq_len) {
  const int64_t embedding = config.hidden_size() * static_cast<int64_t>(config.vocab_size());
  // The embedding is a lookup, not a matmul.
  const double weights = static_cast<double>(CountParameters(config).active - embedding);
  const int64_t head_width = config.has_mla()
                                 ? config.mla().qk_nope_head_dim() +
                                       config.mla().qk_rope_head_dim() + config.mla().v_head_dim()
                                 : 2 * config.head_dim();
  // Scores and weighted values: 2 matmuls of seq_len per token and head, causal half, times 3.
  const double attention = 3.0 * config.num_layers() * config.num_heads() * head_width * seq_len;
  return 6.0 * weights + attention;
}

}  // namespace training
