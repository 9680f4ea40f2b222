#include "model/stage_adapter.h"

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "comm/local_communicator.h"
#include "gtest/gtest.h"
#include "model/config.h"
#include "model/init.h"
#include "model/internal/test_model.h"
#include "model/model_stage.h"

namespace model {
namespace {

using test_util::TestBatch;

ModelConfig TinyConfig() { return test_util::TestConfig("tiny"); }

using Bytes = std::vector<std::byte>;

Matrix<float> ToMatrix(const Bytes& bytes, int64_t hidden) {
  Matrix<float> m(static_cast<int64_t>(bytes.size() / sizeof(float)) / hidden, hidden);
  std::memcpy(m.data(), bytes.data(), bytes.size());
  return m;
}

// The first layer with the embedding, and the second with the head.
const StageRange kFirst{0, 1, true, false};
const StageRange kLast{1, 2, false, true};

// Three micro-batches through two adapters in a pipeline order that uses both kinds of overlapped
// pair (with the same stage and with the other one) give exactly the losses and gradients of the
// ModelStages called directly.
TEST(StageAdapterTest, PipelineThroughTheInterfaceEqualsDirectCalls) {
  const ModelConfig config = TinyConfig();
  const std::vector<MicroBatch> batches = {TestBatch(1), TestBatch(2), TestBatch(3)};
  ModelStage<float> direct_first(config, kFirst), direct_last(config, kLast);
  ModelStage<float> first(config, kFirst), last(config, kLast);
  for (ModelStage<float>* s : {&direct_first, &direct_last, &first, &last}) {
    InitParams(s->Params(), config.init_std(), 7);
  }
  std::vector<float> losses;
  for (const MicroBatch& batch : batches) {
    ModelStage<float>::Context c_first, c_last;
    const Matrix<float> h = direct_first.Forward(batch, Matrix<float>(), &c_first);
    losses.push_back(direct_last.Forward(batch, h, &c_last)(0, 0) + c_last.aux_loss);
    direct_first.BackwardInput(direct_last.BackwardInput(Matrix<float>(), &c_last), &c_first);
    direct_last.BackwardWeight(&c_last);
    direct_first.BackwardWeight(&c_first);
  }

  absl::StatusOr<std::unique_ptr<StageAdapter>> a = StageAdapter::Create(&first, batches);
  absl::StatusOr<std::unique_ptr<StageAdapter>> b = StageAdapter::Create(&last, batches);
  ASSERT_TRUE(a.ok() && b.ok());
  StageAdapter& s0 = **a;
  StageAdapter& s1 = **b;
  const size_t bytes = 8 * 16 * sizeof(float);
  EXPECT_EQ(s0.InputBytes(), 0u);
  EXPECT_EQ(s0.OutputBytes(), bytes);
  EXPECT_EQ(s1.InputBytes(), bytes);
  EXPECT_EQ(s1.OutputBytes(), 0u);
  std::vector<Bytes> act(3, Bytes(bytes)), grad(3, Bytes(bytes));
  ASSERT_TRUE(s0.Forward(0, {}, absl::MakeSpan(act[0])).ok());
  ASSERT_TRUE(s1.Forward(0, act[0], {}).ok());
  ASSERT_TRUE(s0.Forward(1, {}, absl::MakeSpan(act[1])).ok());
  ASSERT_TRUE(s1.OverlappedForwardBackward(1, act[1], {}, s1, 0, {}, absl::MakeSpan(grad[0])).ok());
  ASSERT_TRUE(s0.OverlappedForwardBackward(2, {}, absl::MakeSpan(act[2]), s1, 1, {},
                                           absl::MakeSpan(grad[1]))
                  .ok());
  ASSERT_TRUE(s1.Forward(2, act[2], {}).ok());
  ASSERT_TRUE(s0.Backward(0, grad[0], {}).ok());
  ASSERT_TRUE(s0.Backward(1, grad[1], {}).ok());
  ASSERT_TRUE(s1.Backward(2, {}, absl::MakeSpan(grad[2])).ok());
  ASSERT_TRUE(s0.Backward(2, grad[2], {}).ok());

  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<float> loss = s1.Loss(i);
    ASSERT_TRUE(loss.ok()) << loss.status();
    EXPECT_EQ(*loss, losses[i]) << i;
  }
  for (auto [got, want] : {std::pair{&first, &direct_first}, std::pair{&last, &direct_last}}) {
    const std::vector<Param<float>*> g = got->Params(), w = want->Params();
    for (size_t i = 0; i < g.size(); ++i) {
      if (g[i]->trainable()) {
        EXPECT_EQ(g[i]->grad, w[i]->grad) << g[i]->name;
      }
    }
  }
}

TEST(StageAdapterTest, BadCallsAreErrors) {
  const ModelConfig config = TinyConfig();
  ModelStage<float> last(config, kLast);
  InitParams(last.Params(), config.init_std(), 7);
  MicroBatch other = TestBatch(2);
  other.tokens.resize(4);
  other.targets.resize(4);
  EXPECT_EQ(StageAdapter::Create(&last, {TestBatch(1), other}).status().code(),
            absl::StatusCode::kInvalidArgument);
  MicroBatch bad = TestBatch(1);
  bad.targets[0] = 99;
  EXPECT_EQ(StageAdapter::Create(&last, {bad}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::unique_ptr<comm::Communicator>> group = comm::CreateLocalGroup(1);
  EXPECT_EQ(
      StageAdapter::Create(&last, {TestBatch(1)}, {group[0].get(), group[0].get()}).status().code(),
      absl::StatusCode::kInvalidArgument);

  std::unique_ptr<StageAdapter> stage = *StageAdapter::Create(&last, {TestBatch(1)});
  Bytes input(stage->InputBytes()), short_input(stage->InputBytes() - 4), grad(input.size());
  EXPECT_EQ(stage->Forward(1, input, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stage->Forward(0, short_input, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stage->Loss(0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(stage->BackwardInput(0, {}, absl::MakeSpan(grad)).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(stage->Forward(0, input, {}).ok());
  EXPECT_EQ(stage->Forward(0, input, {}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(stage->BackwardWeight(0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(stage->BackwardInput(0, {}, {}).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(stage->BackwardInput(0, {}, absl::MakeSpan(grad)).ok());
  EXPECT_EQ(stage->BackwardInput(0, {}, absl::MakeSpan(grad)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(stage->BackwardWeight(0).ok());
  EXPECT_TRUE(stage->Loss(0).ok());
}

// With expert parallelism over 2 local ranks, the adapter's calls (an overlapped pair among them)
// give exactly what the stage's EP calls give directly.
TEST(StageAdapterTest, ExpertParallelStageEqualsDirectCalls) {
  const ModelConfig config = TinyConfig();
  constexpr int kRanks = 2;
  std::vector<std::unique_ptr<comm::Communicator>> f_group = comm::CreateLocalGroup(kRanks);
  std::vector<std::unique_ptr<comm::Communicator>> b_group = comm::CreateLocalGroup(kRanks);
  std::vector<absl::Status> statuses(kRanks);
  std::vector<std::vector<float>> adapter_losses(kRanks), direct_losses(kRanks);
  std::vector<Matrix<float>> adapter_dx(kRanks), direct_dx(kRanks);
  auto body = [&](int r) -> absl::Status {
    const std::vector<MicroBatch> batches = {TestBatch(2 * r), TestBatch(2 * r + 1)};
    const std::vector<Matrix<float>> x = {RandomMatrix<float>(8, 16, 10 + r),
                                          RandomMatrix<float>(8, 16, 20 + r)};
    ModelStage<float> direct(config, kLast, r, kRanks), wrapped(config, kLast, r, kRanks);
    InitParams(direct.Params(), config.init_std(), 7);
    InitParams(wrapped.Params(), config.init_std(), 7);
    for (int i = 0; i < 2; ++i) {
      ModelStage<float>::Context ctx;
      absl::StatusOr<Matrix<float>> loss = direct.Forward(batches[i], x[i], &ctx, *f_group[r]);
      if (!loss.ok()) return loss.status();
      direct_losses[r].push_back((*loss)(0, 0) + ctx.aux_loss);
      absl::StatusOr<Matrix<float>> dx = direct.BackwardInput(Matrix<float>(), &ctx, *b_group[r]);
      if (!dx.ok()) return dx.status();
      direct_dx[r] = *dx;  // micro-batch 1's
      direct.BackwardWeight(&ctx);
    }
    absl::StatusOr<std::unique_ptr<StageAdapter>> stage =
        StageAdapter::Create(&wrapped, batches, {f_group[r].get(), b_group[r].get()});
    if (!stage.ok()) return stage.status();
    const auto bytes = [](const Matrix<float>& m) {
      return absl::MakeConstSpan(reinterpret_cast<const std::byte*>(m.data()),
                                 m.size() * sizeof(float));
    };
    Bytes dx0((*stage)->InputBytes()), dx1((*stage)->InputBytes());
    if (absl::Status s = (*stage)->Forward(0, bytes(x[0]), {}); !s.ok()) return s;
    if (absl::Status s = (*stage)->OverlappedForwardBackward(1, bytes(x[1]), {}, **stage, 0, {},
                                                             absl::MakeSpan(dx0));
        !s.ok()) {
      return s;
    }
    if (absl::Status s = (*stage)->Backward(1, {}, absl::MakeSpan(dx1)); !s.ok()) return s;
    for (int i = 0; i < 2; ++i) adapter_losses[r].push_back(*(*stage)->Loss(i));
    adapter_dx[r] = ToMatrix(dx1, 16);
    const std::vector<Param<float>*> g = wrapped.Params(), w = direct.Params();
    for (size_t i = 0; i < g.size(); ++i) {
      if (g[i]->trainable()) {
        EXPECT_EQ(g[i]->grad, w[i]->grad) << g[i]->name;
      }
    }
    return absl::OkStatus();
  };
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) threads.emplace_back([&, r] { statuses[r] = body(r); });
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) {
    ASSERT_TRUE(statuses[r].ok()) << statuses[r];
    EXPECT_EQ(adapter_losses[r], direct_losses[r]) << r;
    EXPECT_EQ(adapter_dx[r], direct_dx[r]) << r;
  }
}

}  // namespace
}  // namespace model
