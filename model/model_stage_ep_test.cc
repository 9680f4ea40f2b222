// ModelStage's expert-parallel calls over comm's local backend (ranks as threads).
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "comm/local_communicator.h"
#include "core/status_macros.h"
#include "gtest/gtest.h"
#include "model/config.h"
#include "model/expert_exchange.h"
#include "model/init.h"
#include "model/internal/test_model.h"
#include "model/model_stage.h"

namespace model {
namespace {

using test_util::TestBatch;
using test_util::TestConfig;

constexpr int64_t kTokens = 8;  // per TestBatch

// Both layers and the head, fed hidden states, so that BackwardInput returns an input gradient.
const StageRange kRange{0, 2, false, true};

// What one rank saw.
struct RankResult {
  float loss = 0;
  float aux_loss = 0;
  Matrix<float> dx;
  std::map<std::string, Matrix<float>> grads;
};

std::map<std::string, Matrix<float>> GradsByName(ModelStage<float>& stage) {
  std::map<std::string, Matrix<float>> grads;
  for (Param<float>* p : stage.Params()) {
    if (p->trainable()) grads[p->name] = p->grad;
  }
  return grads;
}

// Float sums whose terms EP groups differently (another row count can make Eigen pick another
// product kernel; weight gradients sum per rank before the all-reduce) differ by about k * 2^-24
// relative for k terms, k <= 64 here; a misrouted or lost row is an O(1) error.
constexpr float kTolerance = 1e-5f;

// Expert parallelism over 2 and 4 local ranks, rank r running micro-batch r, gives the losses,
// input gradients and (after the all-reduce of replicated weights) weight gradients of one rank
// running every micro-batch with all the experts.
class ModelStageEpTest : public ::testing::TestWithParam<std::tuple<const char*, int>> {};

TEST_P(ModelStageEpTest, MatchesOneRank) {
  const ModelConfig config = TestConfig(std::get<0>(GetParam()));
  const int ranks = std::get<1>(GetParam());
  ModelStage<float> whole(config, kRange);
  InitParams(whole.Params(), config.init_std(), 7);
  std::vector<RankResult> expected(ranks);
  for (int r = 0; r < ranks; ++r) {
    ModelStage<float>::Context ctx;
    const Matrix<float> x = RandomMatrix<float>(kTokens, config.hidden_size(), 10 + r);
    expected[r].loss = whole.Forward(TestBatch(r), x, &ctx)(0, 0);
    expected[r].aux_loss = ctx.aux_loss;
    expected[r].dx = whole.BackwardInput(Matrix<float>(), &ctx);
    whole.BackwardWeight(&ctx);
  }
  const std::map<std::string, Matrix<float>> grads = GradsByName(whole);

  std::vector<RankResult> got(ranks);
  std::vector<std::vector<std::string>> replicated(ranks);
  const std::vector<absl::Status> statuses =
      comm::RunLocalRanks(ranks, [&](comm::Communicator& ep) -> absl::Status {
        const int r = ep.rank();
        ModelStage<float> stage(config, kRange, r, ranks);
        InitParams(stage.Params(), config.init_std(), 7);  // by name: the weights of `whole`
        ModelStage<float>::Context ctx;
        const Matrix<float> x = RandomMatrix<float>(kTokens, config.hidden_size(), 10 + r);
        ASSIGN_OR_RETURN(const Matrix<float> loss, stage.Forward(TestBatch(r), x, &ctx, ep));
        got[r].loss = loss(0, 0);
        got[r].aux_loss = ctx.aux_loss;
        ASSIGN_OR_RETURN(got[r].dx, stage.BackwardInput(Matrix<float>(), &ctx, ep));
        stage.BackwardWeight(&ctx);
        RETURN_IF_ERROR(AllReduceGradients(ep, stage.ReplicatedParams()));
        got[r].grads = GradsByName(stage);
        for (Param<float>* p : stage.ReplicatedParams()) {
          if (p->trainable()) replicated[r].push_back(p->name);
        }
        return absl::OkStatus();
      });
  for (int r = 0; r < ranks; ++r) {
    ASSERT_TRUE(statuses[r].ok()) << statuses[r];
    EXPECT_NEAR(got[r].loss, expected[r].loss, kTolerance * expected[r].loss) << r;
    EXPECT_NEAR(got[r].aux_loss, expected[r].aux_loss, kTolerance * expected[r].aux_loss) << r;
    EXPECT_TRUE(got[r].dx.isApprox(expected[r].dx, kTolerance)) << r;
    for (const auto& [name, grad] : got[r].grads) {
      EXPECT_TRUE(grad.isApprox(grads.at(name), kTolerance)) << name << " on rank " << r;
    }
    // Every trainable weight but the routed experts is replicated; each rank holds 8 / ranks
    // experts of three matrices.
    const size_t expert_params = 3 * 8 / ranks;
    EXPECT_EQ(replicated[r].size() + expert_params, got[r].grads.size()) << r;
    for (const std::string& name : replicated[r]) {
      EXPECT_EQ(name.find(".mlp.experts."), std::string::npos) << name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ConfigsAndRanks, ModelStageEpTest,
                         ::testing::Combine(::testing::Values("tiny", "tiny_mla"),
                                            ::testing::Values(2, 4)));

// On each rank, micro-batch b's forward overlapped with micro-batch a's backward (each with its
// own communicator, so their all-to-alls are in flight at the same time) gives exactly what the
// same EP calls give one after the other.
TEST(ModelStageEpOverlapTest, EqualsSequentialOrder) {
  const ModelConfig config = TestConfig("tiny");
  constexpr int kRanks = 2;
  std::vector<std::unique_ptr<comm::Communicator>> f_group = comm::CreateLocalGroup(kRanks);
  std::vector<std::unique_ptr<comm::Communicator>> b_group = comm::CreateLocalGroup(kRanks);
  std::vector<RankResult> overlapped(kRanks), sequential(kRanks);
  std::vector<absl::Status> statuses(kRanks);
  auto rank_body = [&](int r) -> absl::Status {
    comm::Communicator& f_ep = *f_group[r];
    comm::Communicator& b_ep = *b_group[r];
    ModelStage<float> stage(config, kRange, r, kRanks);
    InitParams(stage.Params(), config.init_std(), 7);
    const MicroBatch a = TestBatch(2 * r), b = TestBatch(2 * r + 1);
    const Matrix<float> x_a = RandomMatrix<float>(kTokens, config.hidden_size(), 20 + r);
    const Matrix<float> x_b = RandomMatrix<float>(kTokens, config.hidden_size(), 30 + r);

    ModelStage<float>::Context ctx_a, ctx_b;
    RETURN_IF_ERROR(stage.Forward(a, x_a, &ctx_a, f_ep).status());
    ASSIGN_OR_RETURN(auto pair, stage.OverlappedForwardBackward(b, x_b, &ctx_b, f_ep,
                                                                Matrix<float>(), &ctx_a, b_ep));
    overlapped[r].loss = pair.first(0, 0);
    ASSIGN_OR_RETURN(overlapped[r].dx, stage.BackwardInput(Matrix<float>(), &ctx_b, b_ep));
    overlapped[r].dx += pair.second;
    stage.BackwardWeight(&ctx_a);
    stage.BackwardWeight(&ctx_b);
    overlapped[r].grads = GradsByName(stage);

    ZeroGrads(stage.Params());
    Matrix<float> dx_a;
    RETURN_IF_ERROR(stage.Forward(a, x_a, &ctx_a, f_ep).status());
    ASSIGN_OR_RETURN(dx_a, stage.BackwardInput(Matrix<float>(), &ctx_a, f_ep));
    ASSIGN_OR_RETURN(const Matrix<float> loss_b, stage.Forward(b, x_b, &ctx_b, f_ep));
    sequential[r].loss = loss_b(0, 0);
    ASSIGN_OR_RETURN(sequential[r].dx, stage.BackwardInput(Matrix<float>(), &ctx_b, f_ep));
    sequential[r].dx += dx_a;
    stage.BackwardWeight(&ctx_a);
    stage.BackwardWeight(&ctx_b);
    sequential[r].grads = GradsByName(stage);
    return absl::OkStatus();
  };
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) threads.emplace_back([&, r] { statuses[r] = rank_body(r); });
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) {
    ASSERT_TRUE(statuses[r].ok()) << statuses[r];
    EXPECT_EQ(overlapped[r].loss, sequential[r].loss) << r;
    EXPECT_EQ(overlapped[r].dx, sequential[r].dx) << r;
    EXPECT_EQ(overlapped[r].grads, sequential[r].grads) << r;
  }
}

// A peer that leaves makes the EP calls return an error instead of hanging.
TEST(ModelStageEpOverlapTest, APeerThatLeavesIsAnError) {
  const ModelConfig config = TestConfig("tiny");
  const std::vector<absl::Status> statuses =
      comm::RunLocalRanks(2, [&](comm::Communicator& ep) -> absl::Status {
        if (ep.rank() == 1) return absl::OkStatus();  // leaves at once
        ModelStage<float> stage(config, kRange, 0, 2);
        InitParams(stage.Params(), config.init_std(), 7);
        ModelStage<float>::Context ctx;
        return stage
            .Forward(TestBatch(0), RandomMatrix<float>(kTokens, config.hidden_size(), 1), &ctx, ep)
            .status();
      });
  EXPECT_TRUE(statuses[1].ok());
  EXPECT_FALSE(statuses[0].ok());
  // The error says where the stage waited: the first MoE layer's forward expert exchange.
  EXPECT_TRUE(absl::StrContains(statuses[0].message(), "layer 1 forward expert counts: "))
      << statuses[0];
}

}  // namespace
}  // namespace model
