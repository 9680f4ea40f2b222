#include "training/trainer.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "comm/local_communicator.h"
#include "gtest/gtest.h"
#include "model/model_stage.h"
#include "model/safetensors.h"
#include "training/checkpoint.h"
#include "training/config.h"

namespace training {
namespace {
namespace fs = std::filesystem;

// A 4-layer MoE model (1 dense + 3 MoE layers of 8 experts) on the tokenizer tests' corpus.
constexpr char kConfigPath[] = "training/testdata/tiny_moe.textproto";

struct TrainRun {
  std::vector<float> losses;
  std::map<std::string, std::vector<float>> params;  // from the last checkpoint
  std::map<std::string, std::vector<float>> optimizer;
  std::vector<int64_t> optimizer_state_floats;  // by world rank (TrainSummary)
};

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  const fs::path dir = fs::path(base != nullptr ? base : "/tmp") / name;
  fs::remove_all(dir);
  return dir.string();
}

// Every f32 tensor of the checkpoint's files whose name starts with `prefix`, by tensor name.
std::map<std::string, std::vector<float>> ReadShards(const std::string& checkpoint,
                                                     const std::string& prefix) {
  std::map<std::string, std::vector<float>> tensors;
  for (const fs::directory_entry& entry : fs::directory_iterator(checkpoint)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind(prefix, 0) != 0 || entry.path().extension() != ".safetensors") continue;
    absl::StatusOr<model::SafetensorsFile> shard = model::ReadSafetensors(entry.path().string());
    EXPECT_TRUE(shard.ok()) << shard.status();
    if (!shard.ok()) continue;
    for (const auto& [name, tensor] : shard->tensors) {
      if (tensor.dtype() != core::DType::kF32) continue;
      const float* data = tensor.data<float>();
      // Model files of different expert ranks share nothing; optimizer files hold every
      // parameter their rank updates, so they are keyed by file too.
      const std::string key = prefix == "model-" ? name : absl::StrCat(file, ":", name);
      EXPECT_EQ(tensors.count(key), 0u) << key;
      tensors[key] = std::vector<float>(data, data + tensor.num_elements());
    }
  }
  return tensors;
}

// Trains kConfigPath with `overrides` on ranks as threads into `dir`.
TrainRun Train(const std::vector<std::string>& overrides, const std::string& dir,
               bool resume = false, int64_t stop_after_step = 0) {
  TrainRun run;
  const std::string config_path = kConfigPath;
  absl::StatusOr<TrainingConfig> config = LoadTrainingConfig(config_path, overrides);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return run;
  absl::StatusOr<PreparedData> data = PrepareData(*config, dir);
  EXPECT_TRUE(data.ok()) << data.status();
  if (!data.ok()) return run;
  TrainerOptions options;
  options.output_dir = dir;
  options.resume = resume;
  options.stop_after_step = stop_after_step;
  options.peak_gflops = 1;
  const int world = config->parallel().pp() * config->parallel().ep() * config->parallel().dp();
  run.optimizer_state_floats.resize(world);
  std::mutex mu;
  const std::vector<absl::Status> statuses =
      comm::RunLocalRanks(world, [&](comm::Communicator& comm) -> absl::Status {
        absl::StatusOr<TrainSummary> summary = TrainRank(*config, options, *data, comm);
        if (!summary.ok()) return summary.status();
        std::lock_guard<std::mutex> lock(mu);
        run.optimizer_state_floats[comm.rank()] = summary->optimizer_state_floats;
        if (comm.rank() == 0) run.losses = summary->losses;
        return absl::OkStatus();
      });
  for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
  absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> checkpoints =
      ListCheckpoints((fs::path(dir) / "checkpoints").string());
  EXPECT_TRUE(checkpoints.ok() && !checkpoints->empty());
  if (checkpoints.ok() && !checkpoints->empty()) {
    run.params = ReadShards(checkpoints->back().second, "model-");
    run.optimizer = ReadShards(checkpoints->back().second, "optimizer-");
  }
  return run;
}

// |a - b| <= tolerance * (max(|a|, |b|) + 0.01) element by element: relative, with a floor of
// the weights' scale (init_std 0.1), because AdamW divides each gradient by its own RMS, so
// gradients equal to rounding can move a near-zero weight by rounding of the update's size.
void ExpectClose(const std::vector<float>& a, const std::vector<float>& b, double tolerance,
                 const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    const double scale = std::max(std::abs(double{a[i]}), std::abs(double{b[i]})) + 0.01;
    ASSERT_LE(std::abs(double{a[i]} - b[i]), tolerance * scale)
        << what << "[" << i << "]: " << a[i] << " vs " << b[i];
  }
}

// Losses within `tolerance`; parameters within 10x that after five AdamW steps (see ExpectClose).
void ExpectSameModel(const TrainRun& a, const TrainRun& b, double tolerance) {
  ExpectClose(a.losses, b.losses, tolerance, "losses");
  tolerance *= 10;
  ASSERT_EQ(a.params.size(), b.params.size());
  for (const auto& [name, values] : a.params) {
    ASSERT_EQ(b.params.count(name), 1u) << name;
    ExpectClose(values, b.params.at(name), tolerance, name);
  }
}

class PipelinedTrainingTest : public testing::Test {
 protected:
  static void SetUpTestSuite() { single_ = new TrainRun(Train({}, TempDir("single"))); }
  static void TearDownTestSuite() { delete single_; }
  static TrainRun* single_;
};
TrainRun* PipelinedTrainingTest::single_ = nullptr;

// 1F1B and ZB1P accumulate each stage's gradients in micro-batch order, as the single rank does,
// so the parameters are equal bit for bit. The losses are sums of the stages' parts (MoE balance
// terms on each stage, the cross-entropy on the last), added in another order across ranks, so
// they agree to f32 rounding.
TEST_F(PipelinedTrainingTest, OneF1BAndZb1pEqualOneRank) {
  ASSERT_EQ(single_->losses.size(), 5u);
  EXPECT_LT(single_->losses.back(), single_->losses.front());
  for (const char* schedule : {"1f1b", "zb1p"}) {
    SCOPED_TRACE(schedule);
    const TrainRun run =
        Train({absl::StrCat("parallel.schedule=", schedule), "parallel.pp=4"}, TempDir(schedule));
    ExpectClose(run.losses, single_->losses, 1e-6, "losses");
    for (const auto& [name, values] : single_->params)
      EXPECT_EQ(run.params.at(name), values) << name;
  }
}

// DualPipe runs each stage as two copies, one per direction, whose gradients are summed after the
// step: (sum over the first half) + (sum over the second half) rather than one running sum, which
// rounds differently. DualPipeV's single route keeps micro-batch order.
TEST_F(PipelinedTrainingTest, DualPipeAndDualPipeVEqualOneRank) {
  const TrainRun dualpipe =
      Train({"parallel.schedule=dualpipe", "parallel.pp=4"}, TempDir("dualpipe"));
  ExpectSameModel(dualpipe, *single_, 1e-5);
  const TrainRun dualpipev =
      Train({"parallel.schedule=dualpipev", "parallel.pp=2"}, TempDir("dualpipev"));
  ExpectSameModel(dualpipev, *single_, 1e-5);
}

// Two expert ranks (each with half of the experts and its own data shard) or two data-parallel
// replicas see the same global batch as one rank with twice the micro-batches; the gradient sums
// are split in two and added, so they agree to rounding.
TEST_F(PipelinedTrainingTest, ExpertAndDataParallelEqualOneRank) {
  const TrainRun wide = Train({"parallel.microbatches=16"}, TempDir("wide"));
  const TrainRun ep = Train({"parallel.ep=2"}, TempDir("ep2"));
  ExpectSameModel(ep, wide, 1e-5);
  const TrainRun dp = Train({"parallel.dp=2"}, TempDir("dp2"));
  ExpectSameModel(dp, wide, 1e-5);
  const TrainRun all = Train({"parallel.schedule=dualpipe", "parallel.pp=2", "parallel.ep=2",
                              "parallel.dp=2", "parallel.microbatches=4"},
                             TempDir("all"));
  ExpectSameModel(all, wide, 1e-5);
}

// 10 steps straight equal 5 steps, a checkpoint, a resume and 5 more, bit for bit: losses,
// parameters and optimizer state (the data position, the MoE biases and AdamW's step come back).
TEST(ResumeTest, ResumedRunEqualsStraightRun) {
  const std::vector<std::string> layout = {"parallel.schedule=dualpipe", "parallel.pp=2",
                                           "parallel.ep=2", "parallel.microbatches=4"};
  std::vector<std::string> ten = layout;
  ten.push_back("steps=10");
  const TrainRun straight = Train(ten, TempDir("straight"));
  const std::string dir = TempDir("resumed");
  const TrainRun first = Train(ten, dir, /*resume=*/false, /*stop_after_step=*/5);
  const TrainRun second = Train(ten, dir, /*resume=*/true);
  std::vector<float> losses = first.losses;
  losses.insert(losses.end(), second.losses.begin(), second.losses.end());
  EXPECT_EQ(losses, straight.losses);
  EXPECT_EQ(second.params, straight.params);
  EXPECT_EQ(second.optimizer, straight.optimizer);
}

// The same tensors, bit for bit; a failure names the first tensor that differs.
void ExpectSameTensors(const std::map<std::string, std::vector<float>>& a,
                       const std::map<std::string, std::vector<float>>& b,
                       const std::string& what) {
  EXPECT_FALSE(a.empty()) << what;
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [name, values] : a) {
    ASSERT_EQ(b.count(name), 1u) << what << ": " << name;
    const std::vector<float>& other = b.at(name);
    ASSERT_EQ(values.size(), other.size()) << what << ": " << name;
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_EQ(values[i], other[i]) << what << ": " << name << "[" << i << "]";
    }
  }
}

// ZeRO-1: AdamW is element by element and the gradients after the data-parallel all-reduce are
// the same on every replica, so replicas that each update their slice and then all-gather the
// parameters train exactly as replicas that each update everything: equal losses, parameters and
// (gathered into the checkpoint) optimizer state, bit for bit, with clipping on. Each rank holds
// about 1/dp of the optimizer state, and the slices of a position's replicas add up to it.
TEST(ZeroOneTest, EqualsUnshardedBitForBit) {
  struct Case {
    std::vector<std::string> layout;
    int dp;
    int stages;  // per rank
  };
  for (const Case& c :
       std::vector<Case>{// 37008 trainable elements: slices of 7402, the last one 7400.
                         {{"parallel.dp=5"}, 5, 1},
                         {{"parallel.schedule=dualpipe", "parallel.pp=2", "parallel.ep=2",
                           "parallel.dp=2", "parallel.microbatches=4"},
                          2,
                          2}}) {
    SCOPED_TRACE(absl::StrJoin(c.layout, " "));
    std::vector<std::string> overrides = c.layout;
    overrides.push_back("optimizer.clip_grad_norm=0.05");
    const TrainRun plain = Train(overrides, TempDir("plain"));
    overrides.push_back("parallel.zero1=true");
    const TrainRun zero1 = Train(overrides, TempDir("zero1"));
    ASSERT_EQ(plain.losses.size(), 5u);
    EXPECT_EQ(zero1.losses, plain.losses);
    ExpectSameTensors(zero1.params, plain.params, "parameters");
    ExpectSameTensors(zero1.optimizer, plain.optimizer, "optimizer state");
    ASSERT_EQ(zero1.optimizer_state_floats.size(), plain.optimizer_state_floats.size());
    int64_t sharded = 0, whole = 0;
    for (size_t rank = 0; rank < plain.optimizer_state_floats.size(); ++rank) {
      const int64_t mine = zero1.optimizer_state_floats[rank];
      const int64_t all = plain.optimizer_state_floats[rank];
      // Slices of ceil(n / dp) elements, the last one shorter, of each stage's two moments.
      EXPECT_LE(mine, all / c.dp + 2 * c.stages) << "rank " << rank;
      EXPECT_GE(mine, all / c.dp - 2 * c.stages * c.dp) << "rank " << rank;
      sharded += mine;
      whole += all;
    }
    EXPECT_GT(whole, 0);
    EXPECT_EQ(sharded * c.dp, whole);
  }
}

// Checkpoints are the same files with and without ZeRO-1: 5 steps with it, a checkpoint and 5
// without it (and the other way round) equal 10 steps without it, bit for bit.
TEST(ZeroOneTest, ResumesAcrossTheOption) {
  const std::vector<std::string> layout = {"parallel.dp=2", "steps=10"};
  const TrainRun straight = Train(layout, TempDir("zero1_straight"));
  for (bool first_zero1 : {true, false}) {
    SCOPED_TRACE(first_zero1 ? "zero1 then not" : "not then zero1");
    std::vector<std::string> with = layout;
    with.push_back("parallel.zero1=true");
    const std::string dir = TempDir("zero1_resumed");
    const TrainRun first = Train(first_zero1 ? with : layout, dir, /*resume=*/false,
                                 /*stop_after_step=*/5);
    const TrainRun second = Train(first_zero1 ? layout : with, dir, /*resume=*/true);
    std::vector<float> losses = first.losses;
    losses.insert(losses.end(), second.losses.begin(), second.losses.end());
    EXPECT_EQ(losses, straight.losses);
    ExpectSameTensors(second.params, straight.params, "parameters");
    ExpectSameTensors(second.optimizer, straight.optimizer, "optimizer state");
  }
}

// Model stages of unequal length (parallel.stage_layers) train as one rank does, bit for bit.
TEST_F(PipelinedTrainingTest, UnevenStagesEqualOneRank) {
  const TrainRun run = Train(
      {"parallel.schedule=1f1b", "parallel.pp=2", "parallel.stage_layers=1,3"}, TempDir("uneven"));
  ExpectClose(run.losses, single_->losses, 1e-6, "losses");
  for (const auto& [name, values] : single_->params) EXPECT_EQ(run.params.at(name), values) << name;
}

// CountParameters counts every tensor the model holds; CountStageParameters splits them.
TEST(ParameterCountTest, CountsEveryTensor) {
  const std::string path = kConfigPath;
  for (const std::vector<std::string>& overrides : std::vector<std::vector<std::string>>{
           {},
           {"model.mla.q_lora_rank=12", "model.mla.kv_lora_rank=8", "model.mla.qk_nope_head_dim=4",
            "model.mla.qk_rope_head_dim=4", "model.mla.v_head_dim=6"}}) {
    absl::StatusOr<TrainingConfig> config = LoadTrainingConfig(path, overrides);
    ASSERT_TRUE(config.ok()) << config.status();
    const model::ModelConfig& m = config->model();
    int64_t held = 0;
    model::ModelStage<float> whole(m, model::StageRange::Whole(m));
    for (const model::Param<float>* p : whole.Params()) held += p->value.size();
    EXPECT_EQ(CountParameters(m).total, held);
    // Two expert ranks of stage [1, 3) hold its replicated weights each and half its experts.
    int64_t replicated = 0, all = 0;
    for (int ep = 0; ep < 2; ++ep) {
      model::ModelStage<float> stage(m, {1, 3, false, false}, ep, 2);
      for (const model::Param<float>* p : stage.Params()) all += p->value.size();
      for (const model::Param<float>* p : stage.ReplicatedParams()) replicated += p->value.size();
    }
    const StageParameterCount count = CountStageParameters(m, 1, 3, false, false);
    EXPECT_EQ(2 * count.replicated, replicated);
    EXPECT_EQ(2 * count.replicated + count.routed_experts, all);
  }
}

// A rank that fails in the middle of a step makes every other rank return an error naming it,
// within the communication deadline, never a hang.
TEST(DyingRankTest, EveryRankReportsTheFailedOne) {
  const std::string config_path = kConfigPath;
  absl::StatusOr<TrainingConfig> config = LoadTrainingConfig(
      config_path,
      {"parallel.schedule=dualpipe", "parallel.pp=2", "parallel.ep=2", "parallel.microbatches=4"});
  ASSERT_TRUE(config.ok()) << config.status();
  const std::string dir = TempDir("dying");
  absl::StatusOr<PreparedData> data = PrepareData(*config, dir);
  ASSERT_TRUE(data.ok()) << data.status();
  for (int failing : {0, 1, 3}) {
    SCOPED_TRACE(absl::StrCat("rank ", failing, " fails"));
    TrainerOptions options;
    options.output_dir = dir;
    options.peak_gflops = 1;
    options.fail_rank = failing;
    options.fail_at_step = 2;
    comm::CommOptions comm_options;
    comm_options.timeout = absl::Seconds(10);
    const absl::Time start = absl::Now();
    const std::vector<absl::Status> statuses =
        comm::RunLocalRanks(4, comm_options, [&](comm::Communicator& comm) -> absl::Status {
          return TrainRank(*config, options, *data, comm).status();
        });
    EXPECT_LT(absl::Now() - start, absl::Seconds(10));
    for (int rank = 0; rank < 4; ++rank) {
      const absl::Status& status = statuses[rank];
      ASSERT_FALSE(status.ok()) << "rank " << rank;
      if (rank == failing) {
        EXPECT_NE(status.message().find("injected failure in step 2"), std::string::npos) << status;
      } else {
        // "... (world: rank R aborted the group: rank F has left the group)": the world group
        // names the lost rank F by its world rank, whoever noticed first.
        EXPECT_TRUE(absl::StrContains(status.message(), "(world: ") &&
                    absl::EndsWith(status.message(),
                                   absl::StrCat("rank ", failing, " has left the group)")))
            << "rank " << rank << ": " << status;
      }
    }
  }
}

TEST(ConfigErrorsTest, LayoutErrorsNameTheField) {
  const std::string path = kConfigPath;
  struct Case {
    std::string set;
    std::string message;
  };
  for (const Case& c :
       std::vector<Case>{{"parallel.pp=3", "do not divide the model's 4 layers"},
                         {"parallel.ep=3", "does not divide the model's 8 routed experts"},
                         {"parallel.schedule=dualpipe", "dualpipe needs an even number of ranks"},
                         {"parallel.microbatches=2", "parallel:"},
                         {"optimizer.decay=step", "optimizer.decay"},
                         {"nosuch.field=1", "has no field 'nosuch'"},
                         {"data.seq_len=99", "exceeds the model's max_seq_len"},
                         {"parallel.stage_layers=1,2", "2 entries summing to 3"},
                         {"parallel.stage_layers=0,4", "every stage needs a layer"}}) {
    std::vector<std::string> overrides = {c.set};
    if (c.set == "parallel.microbatches=2") {
      overrides = {"parallel.schedule=dualpipe", "parallel.pp=2", "parallel.microbatches=2"};
    }
    absl::StatusOr<TrainingConfig> config = LoadTrainingConfig(path, overrides);
    EXPECT_TRUE(absl::IsInvalidArgument(config.status())) << c.set << ": " << config.status();
    EXPECT_NE(config.status().message().find(c.message), std::string::npos)
        << c.set << ": " << config.status();
  }
}

}  // namespace
}  // namespace training
