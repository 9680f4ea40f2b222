// The MoE model through the pipeline executor (model::StageAdapter over dualpipe::Executor), with
// and without expert parallelism inside each pipeline rank and with DualPipe's overlapped F+B:
// one step's losses and weight gradients equal those of the whole model on one rank, micro-batch
// by micro-batch. This is the executor's test on the real model; it lives in training, the one
// layer that may use both dualpipe's executor and the model.
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/local_communicator.h"
#include "comm/parallel_groups.h"
#include "dualpipe/executor.h"
#include "dualpipe/generate.h"
#include "dualpipe/placement.h"
#include "gtest/gtest.h"
#include "model/config.h"
#include "model/expert_exchange.h"
#include "model/init.h"
#include "model/model_stage.h"
#include "model/stage_adapter.h"

namespace training {
namespace {

constexpr char kModel[] = R"pb(
  name: "pipelined-test"
  vocab_size: 48
  hidden_size: 16
  intermediate_size: 24
  num_layers: 4
  first_k_dense_layers: 1
  num_heads: 2
  head_dim: 8
  rope_theta: 10000
  rms_norm_eps: 1e-6
  max_seq_len: 16
  init_std: 0.2
  moe {
    num_routed_experts: 8
    num_shared_experts: 1
    top_k: 2
    num_groups: 4
    topk_groups: 2
    route_scale: 2.5
    expert_intermediate_size: 8
    bias_update_speed: 0.001
    sequence_aux_loss_alpha: 0.0001
    gate_bias: true
  }
)pb";

constexpr int kSeqLen = 8;
constexpr uint64_t kSeed = 11;

// Micro-batch `index`: two sequences of random tokens, targets the next token.
model::MicroBatch Batch(int index, double loss_scale) {
  model::Rng rng(1000 + index);
  model::MicroBatch batch;
  batch.seq_len = kSeqLen;
  batch.loss_scale = loss_scale;
  for (int s = 0; s < 2; ++s) {
    std::vector<int32_t> tokens(kSeqLen + 1);
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng.Next() % 48);
    batch.tokens.insert(batch.tokens.end(), tokens.begin(), tokens.end() - 1);
    batch.targets.insert(batch.targets.end(), tokens.begin() + 1, tokens.end());
  }
  return batch;
}

struct StepOutcome {
  std::vector<float> losses;                        // by global micro-batch (per pipeline)
  std::map<std::string, std::vector<float>> grads;  // by parameter name, summed over copies
};

// One step of the whole model on one rank over `batches`, in order.
StepOutcome Sequential(const model::ModelConfig& config,
                       const std::vector<model::MicroBatch>& batches) {
  model::ModelStage<float> stage(config, model::StageRange::Whole(config));
  model::InitParams(stage.Params(), config.init_std(), kSeed);
  StepOutcome outcome;
  for (const model::MicroBatch& batch : batches) {
    model::ModelStage<float>::Context ctx;
    const model::Matrix<float> loss = stage.Forward(batch, model::Matrix<float>(), &ctx);
    outcome.losses.push_back(loss(0, 0) + ctx.aux_loss);
    stage.BackwardInput(model::Matrix<float>(), &ctx);
    stage.BackwardWeight(&ctx);
  }
  for (model::Param<float>* p : stage.Params()) {
    if (p->trainable()) {
      outcome.grads[p->name].assign(p->grad.data(), p->grad.data() + p->grad.size());
    }
  }
  return outcome;
}

// One executor step of `schedule` over pp x ep ranks as threads: pipeline (e) runs the global
// micro-batches e * M .. e * M + M - 1 of `batches`. Gradients of the weights every expert rank
// holds are summed over the EP group, and DualPipe's two copies of a stage are summed, as the
// trainer does.
StepOutcome Pipelined(const model::ModelConfig& config, const std::string& schedule_name, int pp,
                      int ep, const std::vector<model::MicroBatch>& batches) {
  const int microbatches = static_cast<int>(batches.size()) / ep;
  absl::StatusOr<dualpipe::Schedule> schedule =
      dualpipe::GenerateSchedule(schedule_name, pp, microbatches);
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  int num_stages = 0;
  for (const dualpipe::Route& route : schedule->routes) {
    num_stages = std::max(num_stages, static_cast<int>(route.hops.size()));
  }
  const int layers = config.num_layers() / num_stages;
  StepOutcome outcome;
  outcome.losses.assign(batches.size(), 0);
  std::mutex mu;
  const std::vector<absl::Status> statuses =
      comm::RunLocalRanks(pp * ep, [&](comm::Communicator& world) -> absl::Status {
        absl::StatusOr<comm::ParallelGroups> groups = comm::BuildParallelGroups(world, {pp, ep, 1});
        if (!groups.ok()) return groups.status();
        const int e = groups->coordinates.ep;
        std::unique_ptr<comm::Communicator> forward, backward;
        if (ep > 1) {
          absl::StatusOr<std::unique_ptr<comm::Communicator>> f = groups->expert->Split(0, e);
          absl::StatusOr<std::unique_ptr<comm::Communicator>> b = groups->expert->Split(0, e);
          if (!f.ok() || !b.ok()) return absl::InternalError("split failed");
          forward = *std::move(f);
          backward = *std::move(b);
        }
        std::vector<std::unique_ptr<model::ModelStage<float>>> stages;
        std::vector<std::unique_ptr<model::StageAdapter>> adapters;
        std::vector<dualpipe::Stage*> by_path(schedule->NumPaths(), nullptr);
        const std::vector<dualpipe::HostedStage> hosted =
            dualpipe::HostedStages(*schedule, groups->coordinates.pp);
        for (const dualpipe::HostedStage& hs : hosted) {
          const model::StageRange range{hs.stage * layers, (hs.stage + 1) * layers, hs.first(),
                                        hs.last()};
          stages.push_back(std::make_unique<model::ModelStage<float>>(config, range, e, ep));
          model::InitParams(stages.back()->Params(), config.init_std(), kSeed);
          std::vector<model::MicroBatch> mine(
              batches.begin() + e * microbatches + hs.first_microbatch,
              batches.begin() + e * microbatches + hs.first_microbatch + hs.num_microbatches);
          absl::StatusOr<std::unique_ptr<model::StageAdapter>> adapter =
              model::StageAdapter::Create(stages.back().get(), std::move(mine),
                                          {forward.get(), backward.get()});
          if (!adapter.ok()) return adapter.status();
          adapters.push_back(*std::move(adapter));
          by_path[hs.path] = adapters.back().get();
        }
        absl::StatusOr<std::unique_ptr<dualpipe::Executor>> executor =
            dualpipe::Executor::Create(*schedule, by_path, groups->pipeline.get());
        if (!executor.ok()) return executor.status();
        absl::StatusOr<dualpipe::StepResult> step = (*executor)->Step();
        if (!step.ok()) return step.status();
        for (const std::unique_ptr<model::ModelStage<float>>& stage : stages) {
          if (ep > 1) {
            const absl::Status status =
                model::AllReduceGradients(*groups->expert, stage->ReplicatedParams());
            if (!status.ok()) return status;
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        if (groups->coordinates.pp == 0) {
          for (int m = 0; m < microbatches; ++m)
            outcome.losses[e * microbatches + m] = step->losses[m];
        }
        for (const std::unique_ptr<model::ModelStage<float>>& stage : stages) {
          const std::vector<model::Param<float>*> replicated = stage->ReplicatedParams();
          for (model::Param<float>* p : stage->Params()) {
            if (!p->trainable()) continue;
            const bool shared =
                std::find(replicated.begin(), replicated.end(), p) != replicated.end();
            if (shared && e != 0) continue;  // equal on every expert rank after the all-reduce
            std::vector<float>& sum = outcome.grads[p->name];
            if (sum.empty()) sum.assign(p->grad.size(), 0.0f);
            for (int64_t i = 0; i < p->grad.size(); ++i) sum[i] += p->grad.data()[i];
          }
        }
        return absl::OkStatus();
      });
  for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
  return outcome;
}

// Within `tolerance` of the reference's largest magnitude, tensor by tensor: the pipelined sums
// run in another order (per stage copy, per expert rank) than the sequential ones.
void ExpectEqual(const StepOutcome& got, const StepOutcome& want, double tolerance) {
  ASSERT_EQ(got.losses.size(), want.losses.size());
  for (size_t m = 0; m < want.losses.size(); ++m) {
    EXPECT_NEAR(got.losses[m], want.losses[m], tolerance * std::abs(want.losses[m])) << m;
  }
  ASSERT_EQ(got.grads.size(), want.grads.size());
  for (const auto& [name, values] : want.grads) {
    ASSERT_EQ(got.grads.count(name), 1u) << name;
    const std::vector<float>& other = got.grads.at(name);
    ASSERT_EQ(other.size(), values.size()) << name;
    double scale = 0;
    for (float v : values) scale = std::max(scale, std::abs(double{v}));
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_LE(std::abs(double{other[i]} - values[i]), tolerance * scale)
          << name << "[" << i << "]: " << other[i] << " vs " << values[i];
    }
  }
}

struct Case {
  std::string schedule;
  int pp;
  int ep;
  int microbatches;  // per pipeline
};

class PipelinedModelTest : public testing::TestWithParam<Case> {};

TEST_P(PipelinedModelTest, StepEqualsOneRank) {
  absl::StatusOr<model::ModelConfig> config = model::ParseConfig(kModel);
  ASSERT_TRUE(config.ok()) << config.status();
  const Case& c = GetParam();
  const int total = c.microbatches * c.ep;
  std::vector<model::MicroBatch> batches;
  for (int m = 0; m < total; ++m) batches.push_back(Batch(m, 1.0 / total));
  const StepOutcome want = Sequential(*config, batches);
  const StepOutcome got = Pipelined(*config, c.schedule, c.pp, c.ep, batches);
  ExpectEqual(got, want, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Layouts, PipelinedModelTest,
                         testing::Values(Case{"dualpipe", 2, 1, 4}, Case{"dualpipe", 2, 2, 4},
                                         Case{"dualpipe", 4, 1, 8}, Case{"dualpipev", 2, 1, 4},
                                         Case{"dualpipev", 2, 2, 4}, Case{"1f1b", 4, 1, 4},
                                         Case{"zb1p", 2, 2, 3}, Case{"zbv", 2, 1, 4}),
                         [](const testing::TestParamInfo<Case>& info) {
                           return info.param.schedule + "_pp" + std::to_string(info.param.pp) +
                                  "_ep" + std::to_string(info.param.ep);
                         });

}  // namespace
}  // namespace training
