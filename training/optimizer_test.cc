#include "training/optimizer.h"

#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace training {
namespace {

OptimizerConfig Config() {
  OptimizerConfig config;
  config.set_lr(1e-2);
  config.set_beta1(0.9);
  config.set_beta2(0.95);
  config.set_eps(1e-8);
  config.set_weight_decay(0.1);
  return config;
}

// A replica's parameters: two matrices and a norm scale (33 trainable elements) and a buffer.
struct Replica {
  Replica() {
    params.push_back(std::make_unique<model::Param<float>>("a", 3, 5));
    params.push_back(
        std::make_unique<model::Param<float>>("n", 1, 4, model::ParamKind::kNormScale));
    params.push_back(std::make_unique<model::Param<float>>("b", 1, 3, model::ParamKind::kBuffer));
    params.push_back(std::make_unique<model::Param<float>>("c", 2, 7));
    for (size_t i = 0; i < params.size(); ++i) {
      for (int64_t j = 0; j < params[i]->value.size(); ++j) {
        params[i]->value.data()[j] = std::sin(1.0f + 7 * i + j);
      }
    }
  }
  std::vector<model::Param<float>*> Ptrs() {
    std::vector<model::Param<float>*> ptrs;
    for (auto& p : params) ptrs.push_back(p.get());
    return ptrs;
  }
  // The gradients of `step`, equal on every replica (as after the data-parallel all-reduce).
  void SetGrads(int step) {
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i]->trainable()) continue;
      for (int64_t j = 0; j < params[i]->grad.size(); ++j) {
        params[i]->grad.data()[j] = std::cos(0.3f * step + 5 * i + j) * (j % 3 == 0 ? 1e-3f : 1);
      }
    }
  }
  std::vector<float> Values() const {
    std::vector<float> values;
    for (const auto& p : params)
      values.insert(values.end(), p->value.data(), p->value.data() + p->value.size());
    return values;
  }
  std::vector<std::unique_ptr<model::Param<float>>> params;
};

// Each replica's shard of every replica's values, copied into all of them (the all-gather).
void Gather(std::vector<Replica>& replicas, const std::vector<std::unique_ptr<AdamW>>& shards) {
  for (size_t owner = 0; owner < replicas.size(); ++owner) {
    std::vector<model::Param<float>*> source = replicas[owner].Ptrs();
    for (size_t r = 0; r < replicas.size(); ++r) {
      if (r == owner) continue;
      std::vector<model::Param<float>*> target = replicas[r].Ptrs();
      ForEachPiece(source, shards[owner]->shard(),
                   [&](model::Param<float>& p, int64_t at, int64_t, int64_t count) {
                     for (auto* t : target) {
                       if (t->name == p.name)
                         std::copy_n(p.value.data() + at, count, t->value.data() + at);
                     }
                   });
    }
  }
}

TEST(ShardOfTest, ContiguousSlicesLastShorter) {
  const std::vector<std::pair<int64_t, int64_t>> expected = {{0, 3}, {3, 6}, {6, 9}, {9, 10}};
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(ShardOf(10, r, 4).begin, expected[r].first);
    EXPECT_EQ(ShardOf(10, r, 4).end, expected[r].second);
  }
  EXPECT_EQ(ShardOf(9, 3, 4).size(), 0);  // slices of 3: the last replica has none
  EXPECT_EQ(ShardOf(9, 3, 4).begin, 9);
  EXPECT_EQ(ShardOf(8, 0, 1).size(), 8);
}

TEST(FlatSpaceTest, SkipsBuffers) {
  Replica r;
  EXPECT_EQ(FlatSize(r.Ptrs()), 15 + 4 + 14);
  std::vector<std::string> pieces;
  ForEachPiece(r.Ptrs(), {13, 20},
               [&](model::Param<float>& p, int64_t at, int64_t from, int64_t n) {
                 pieces.push_back(p.name + ":" + std::to_string(at) + "," + std::to_string(from) +
                                  "," + std::to_string(n));
               });
  EXPECT_EQ(pieces, (std::vector<std::string>{"a:13,0,2", "n:0,2,4", "c:0,6,1"}));
}

// One step from zero moments: a matrix element moves by the decay and about lr against its
// gradient's sign; a norm scale is not decayed.
TEST(AdamWTest, DecaysMatricesOnly) {
  Replica r;
  const std::vector<float> before = r.Values();
  r.SetGrads(0);
  const float buffer = r.params[2]->value(0, 1);
  AdamW adamw(Config(), r.Ptrs(), ShardOf(33, 0, 1));
  adamw.Step(1e-2, 1);
  const std::vector<float> after = r.Values();
  // Values() holds a (15), n (4), the buffer b (3) and c (14); these gradients are far from 0.
  for (int j : {1, 2, 15 + 1, 15 + 2, 15 + 4 + 3 + 1}) {
    const bool matrix = j < 15 || j >= 15 + 4 + 3;
    const double decayed = before[j] * (matrix ? 1 - 1e-2 * 0.1 : 1);
    EXPECT_NEAR(std::abs(after[j] - decayed), 1e-2, 1e-6) << j;
  }
  EXPECT_EQ(r.params[2]->value(0, 1), buffer);  // buffers are not trained
  EXPECT_EQ(r.params[1]->grad.norm(), 0);       // gradients are zeroed
}

// Replicas that each update their shard and then exchange values equal one optimizer over
// everything, bit for bit, for any number of replicas (uneven and empty shards too); each holds
// only its shard's moments; the whole state gathered from the shards equals the whole
// optimizer's, and a whole state loads into shards.
TEST(AdamWTest, ShardsEqualWholeBitForBit) {
  for (int count : {2, 3, 4, 5, 40}) {
    SCOPED_TRACE(count);
    Replica whole;
    AdamW whole_adamw(Config(), whole.Ptrs());
    std::vector<Replica> replicas(count);
    std::vector<std::unique_ptr<AdamW>> shards;
    int64_t held = 0;
    for (int r = 0; r < count; ++r) {
      shards.push_back(
          std::make_unique<AdamW>(Config(), replicas[r].Ptrs(), ShardOf(33, r, count)));
      EXPECT_EQ(static_cast<int64_t>(shards[r]->exp_avg().size()), shards[r]->shard().size());
      EXPECT_LE(shards[r]->shard().size(), (33 + count - 1) / count);
      held += shards[r]->exp_avg_sq().size();
    }
    EXPECT_EQ(held, 33);
    for (int step = 0; step < 4; ++step) {
      const double lr = 1e-2 / (step + 1);
      whole.SetGrads(step);
      whole_adamw.Step(lr, 0.5f);
      for (int r = 0; r < count; ++r) {
        replicas[r].SetGrads(step);
        shards[r]->Step(lr, 0.5f);
      }
      Gather(replicas, shards);
      for (int r = 0; r < count; ++r) ASSERT_EQ(replicas[r].Values(), whole.Values()) << r;
    }
    // The whole state from the shards' pieces.
    std::vector<float> m(33), v(33);
    for (auto& shard : shards) {
      std::copy(shard->exp_avg().begin(), shard->exp_avg().end(), m.begin() + shard->shard().begin);
      std::copy(shard->exp_avg_sq().begin(), shard->exp_avg_sq().end(),
                v.begin() + shard->shard().begin);
    }
    std::vector<float> whole_m(whole_adamw.exp_avg().begin(), whole_adamw.exp_avg().end());
    std::vector<float> whole_v(whole_adamw.exp_avg_sq().begin(), whole_adamw.exp_avg_sq().end());
    EXPECT_EQ(m, whole_m);
    EXPECT_EQ(v, whole_v);
    const auto state = whole_adamw.State(whole_adamw.exp_avg(), whole_adamw.exp_avg_sq());
    ASSERT_EQ(state.size(), 7u);  // 3 parameters x 2 moments, and the step
    EXPECT_EQ(state[2].first, "n.exp_avg");
    EXPECT_EQ(state[2].second.data<float>(), whole_adamw.exp_avg().data() + 15);
    // A fresh set of shards restored from the whole state continues as the whole optimizer does.
    std::vector<std::unique_ptr<AdamW>> restored;
    for (int r = 0; r < count; ++r) {
      restored.push_back(
          std::make_unique<AdamW>(Config(), replicas[r].Ptrs(), ShardOf(33, r, count)));
      ASSERT_TRUE(restored[r]->LoadState(state).ok());
      EXPECT_EQ(restored[r]->steps(), 4);
    }
    whole.SetGrads(9);
    whole_adamw.Step(1e-3, 1);
    for (int r = 0; r < count; ++r) {
      replicas[r].SetGrads(9);
      restored[r]->Step(1e-3, 1);
    }
    Gather(replicas, restored);
    for (int r = 0; r < count; ++r) EXPECT_EQ(replicas[r].Values(), whole.Values()) << r;
  }
}

TEST(AdamWTest, LoadStateNamesAMissingTensor) {
  Replica r;
  AdamW adamw(Config(), r.Ptrs(), ShardOf(33, 1, 2));
  std::vector<float> m(33), v(33);
  auto state = AdamW(Config(), r.Ptrs()).State(absl::MakeSpan(m), absl::MakeSpan(v));
  state.erase(state.begin() + 3);  // n.exp_avg_sq
  const absl::Status status = adamw.LoadState(state);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_NE(status.message().find("'n.exp_avg_sq'"), std::string::npos) << status;
}

}  // namespace
}  // namespace training
