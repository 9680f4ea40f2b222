#include "serving/incremental_model.h"

#include <cmath>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "gtest/gtest.h"
#include "model/config.h"
#include "model/init.h"
#include "model/model_stage.h"
#include "serving/kv_cache.h"

namespace serving {
namespace {

struct Case {
  const char* config;
  bool yarn;
};

class IncrementalModelTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    absl::StatusOr<model::ModelConfig> config = model::LoadConfig(GetParam().config);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    config_.set_max_seq_len(24);
    if (GetParam().yarn) {
      config_.set_original_seq_len(8);
      config_.set_rope_factor(4);
    }
    ASSERT_TRUE(model::ValidateConfig(config_).ok());
    stage_ = std::make_unique<model::ModelStage<float>>(config_, model::StageRange::Whole(config_));
    model::InitParams(stage_->Params(), config_.init_std(), /*seed=*/7);
    // Gate biases that matter for selection.
    model::Rng rng(3);
    for (model::Param<float>* p : stage_->Params()) {
      if (p->kind == model::ParamKind::kBuffer) {
        for (int64_t i = 0; i < p->value.size(); ++i) p->value.data()[i] = 0.1 * rng.Normal();
      }
    }
  }

  std::vector<int32_t> Tokens(int64_t n, uint64_t seed) const {
    model::Rng rng(seed);
    std::vector<int32_t> tokens(n);
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng.Next() % config_.vocab_size());
    return tokens;
  }

  // The logits [n, vocab] of every position, by InferenceForward.
  Mat Reference(const std::vector<int32_t>& tokens) const {
    absl::StatusOr<Mat> logits =
        stage_->InferenceForward({tokens, static_cast<int64_t>(tokens.size()), 0}, Mat());
    EXPECT_TRUE(logits.ok()) << logits.status();
    return *logits;
  }

  model::ModelConfig config_;
  std::unique_ptr<model::ModelStage<float>> stage_;
};

void ExpectClose(const Mat& got, const Mat& want, int64_t want_row, const char* what) {
  const float scale = std::max(1.0f, want.row(want_row).cwiseAbs().maxCoeff());
  const float diff = (got.row(0) - want.row(want_row)).cwiseAbs().maxCoeff();
  EXPECT_LE(diff, 1e-5f * scale) << what << " position " << want_row;
}

// A prefill in two chunks, then one decode token at a time, equals the whole-sequence forward at
// every position.
TEST_P(IncrementalModelTest, PrefillThenDecodeEqualsInferenceForward) {
  core::ThreadPool pool(2);
  IncrementalModel model(*stage_, &pool);
  const std::vector<int32_t> tokens = Tokens(20, 11);
  const Mat want = Reference(tokens);
  KvCache cache(config_.num_layers(), 16, /*block_size=*/4, model.cache_width());
  std::vector<int32_t> spare, table;
  ASSERT_TRUE(cache.Reserve(8, &spare));  // so that the table's blocks are not 0, 1, 2, ...
  ASSERT_TRUE(cache.Reserve(20, &table));
  const absl::Span<const int32_t> all(tokens);
  absl::StatusOr<Mat> first = model.Forward({{all.subspan(0, 5), 0, &table, -1}}, &cache);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->rows(), 5);
  for (int64_t p = 0; p < 5; ++p) ExpectClose(first->row(p), want, p, "prefill");
  absl::StatusOr<Mat> second = model.Forward({{all.subspan(5, 6), 5, &table, 1}}, &cache);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->rows(), 1);
  ExpectClose(*second, want, 10, "second chunk");
  for (int64_t p = 11; p < 20; ++p) {
    absl::StatusOr<Mat> step = model.Forward({{all.subspan(p, 1), p, &table, 1}}, &cache);
    ASSERT_TRUE(step.ok()) << step.status();
    ExpectClose(*step, want, p, "decode");
  }
}

// A sequence's logits are bit-identical alone and batched with other sequences' prefills and
// decodes.
TEST_P(IncrementalModelTest, BatchInvariant) {
  core::ThreadPool pool(2);
  IncrementalModel model(*stage_, &pool);
  const std::vector<int32_t> a = Tokens(12, 21);
  std::vector<std::vector<int32_t>> others;
  for (int i = 0; i < 5; ++i) others.push_back(Tokens(12, 100 + i));
  std::vector<Mat> alone;
  {
    KvCache cache(config_.num_layers(), 64, 4, model.cache_width());
    std::vector<int32_t> table;
    ASSERT_TRUE(cache.Reserve(12, &table));
    alone.push_back(*model.Forward({{absl::MakeConstSpan(a).subspan(0, 6), 0, &table, 1}}, &cache));
    for (int64_t p = 6; p < 12; ++p) {
      alone.push_back(
          *model.Forward({{absl::MakeConstSpan(a).subspan(p, 1), p, &table, 1}}, &cache));
    }
  }
  KvCache cache(config_.num_layers(), 64, 4, model.cache_width());
  std::vector<std::vector<int32_t>> tables(6);
  for (auto& t : tables) ASSERT_TRUE(cache.Reserve(12, &t));
  // Step 0: a's prefill with every other sequence's prefill of a different length.
  std::vector<SequenceChunk> chunks = {{absl::MakeConstSpan(a).subspan(0, 6), 0, &tables[0], 1}};
  for (int i = 0; i < 5; ++i) {
    chunks.push_back({absl::MakeConstSpan(others[i]).subspan(0, 2 + i), 0, &tables[i + 1], 1});
  }
  absl::StatusOr<Mat> batched = model.Forward(chunks, &cache);
  ASSERT_TRUE(batched.ok()) << batched.status();
  EXPECT_TRUE(batched->row(0) == alone[0].row(0));
  for (int64_t p = 6; p < 12; ++p) {
    chunks = {{absl::MakeConstSpan(a).subspan(p, 1), p, &tables[0], 1}};
    for (int i = 0; i < 5; ++i) {
      const int64_t q = p - 4 + i;  // others decode at their own positions
      chunks.push_back({absl::MakeConstSpan(others[i]).subspan(q, 1), q, &tables[i + 1], 1});
    }
    // Place a in the middle of the batch on odd steps.
    if (p % 2 == 1) std::swap(chunks[0], chunks[3]);
    batched = model.Forward(chunks, &cache);
    ASSERT_TRUE(batched.ok()) << batched.status();
    EXPECT_TRUE(batched->row(p % 2 == 1 ? 3 : 0) == alone[p - 5].row(0)) << "position " << p;
  }
}

TEST_P(IncrementalModelTest, BadChunksAreInvalidArgument) {
  IncrementalModel model(*stage_, nullptr);
  KvCache cache(config_.num_layers(), 4, 4, model.cache_width());
  std::vector<int32_t> table;
  ASSERT_TRUE(cache.Reserve(8, &table));
  const std::vector<int32_t> bad = {0, config_.vocab_size()};
  EXPECT_EQ(model.Forward({{bad, 0, &table, 1}}, &cache).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<int32_t> long_tokens = Tokens(9, 1);
  EXPECT_EQ(model.Forward({{long_tokens, 0, &table, 1}}, &cache).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<int32_t> one = {1};
  EXPECT_EQ(model.Forward({{one, 24, &table, 1}}, &cache).status().code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Configs, IncrementalModelTest,
                         ::testing::Values(Case{"serving/testdata/tiny.textproto", false},
                                           Case{"serving/testdata/tiny_mla.textproto", false},
                                           Case{"serving/testdata/tiny_mla.textproto", true},
                                           Case{"serving/testdata/tiny_cpu.textproto", false}));

}  // namespace
}  // namespace serving
