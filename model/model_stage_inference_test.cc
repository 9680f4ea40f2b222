// ModelStage::InferenceForward against the training Forward's logits, and its errors.
#include <string>

#include "gtest/gtest.h"
#include "model/config.h"
#include "model/cross_entropy.h"
#include "model/init.h"
#include "model/internal/test_model.h"
#include "model/model_stage.h"

namespace model {
namespace {

using test_util::TestBatch;
using test_util::TestConfig;

// The logits the training Forward computes for `batch`, rebuilt from the head's saved input as
// ModelStage::BackwardInput does, and its loss.
template <typename T>
Matrix<T> TrainingLogits(ModelStage<T>& model, const MicroBatch& batch, T* loss) {
  typename ModelStage<T>::Context ctx;
  *loss = model.Forward(batch, Matrix<T>(), &ctx)(0, 0);
  return ctx.head.x * model.Params().back()->value.transpose();
}

InferenceBatch ToInference(const MicroBatch& batch, int64_t last_positions) {
  return {batch.tokens, batch.seq_len, last_positions};
}

class InferenceForwardTest : public ::testing::TestWithParam<const char*> {};

TEST_P(InferenceForwardTest, EqualsTheTrainingForwardsLogits) {
  const ModelConfig config = TestConfig(GetParam());
  ModelStage<double> model(config, StageRange::Whole(config));
  InitParams(model.Params(), config.init_std(), 3);
  const MicroBatch batch = TestBatch(5);
  double loss = 0;
  const Matrix<double> expected = TrainingLogits(model, batch, &loss);

  absl::StatusOr<Matrix<double>> all = model.InferenceForward(ToInference(batch, 0), {});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->rows(), 8);
  ASSERT_EQ(all->cols(), config.vocab_size());
  EXPECT_EQ(*all, expected);  // bit-equal
  EXPECT_EQ(CrossEntropy<double>(*all, batch.targets, nullptr), loss);

  // The last position of each of the two sequences of 4, then the last 3.
  for (const int64_t n : {1, 3}) {
    absl::StatusOr<Matrix<double>> last = model.InferenceForward(ToInference(batch, n), {});
    ASSERT_TRUE(last.ok()) << last.status();
    ASSERT_EQ(last->rows(), 2 * n);
    for (int64_t b = 0; b < 2; ++b) {
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_TRUE(last->row(b * n + i).isApprox(expected.row(b * 4 + 4 - n + i), 1e-14))
            << "sequence " << b << ", last " << n << ", row " << i;
      }
    }
  }
}

TEST_P(InferenceForwardTest, StagesChainToTheWholeModel) {
  const ModelConfig config = TestConfig(GetParam());
  ModelStage<float> whole(config, StageRange::Whole(config));
  ModelStage<float> first(config, {0, 1, true, false});
  ModelStage<float> last(config, {1, config.num_layers(), false, true});
  InitParams(whole.Params(), config.init_std(), 3);
  InitParams(first.Params(), config.init_std(), 3);
  InitParams(last.Params(), config.init_std(), 3);
  const InferenceBatch batch = ToInference(TestBatch(6), 2);
  absl::StatusOr<Matrix<float>> h = first.InferenceForward(batch, {});
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->rows(), 8);
  absl::StatusOr<Matrix<float>> logits = last.InferenceForward(batch, *h);
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ(*logits, *whole.InferenceForward(batch, {}));
}

INSTANTIATE_TEST_SUITE_P(TinyConfigs, InferenceForwardTest, ::testing::Values("tiny", "tiny_mla"));

TEST(InferenceForwardErrorsTest, NameTheBadField) {
  const ModelConfig config = TestConfig("tiny");
  ModelStage<float> model(config, StageRange::Whole(config));
  const InferenceBatch good = ToInference(TestBatch(1), 0);
  const struct {
    InferenceBatch batch;
    const char* field;
  } kCases[] = {
      {{good.tokens, 3, 0}, "InferenceBatch.tokens"},
      {{good.tokens, 17, 0}, "InferenceBatch.seq_len"},
      {{{1, 2, 40, 3}, 4, 0}, "InferenceBatch.tokens"},
      {{good.tokens, 4, 5}, "InferenceBatch.last_positions"},
      {{good.tokens, 4, -1}, "InferenceBatch.last_positions"},
  };
  for (const auto& c : kCases) {
    const absl::Status status = model.InferenceForward(c.batch, {}).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(std::string(status.message()).find(c.field), std::string::npos) << status;
  }
  ModelStage<float> later(config, {1, 2, false, true});
  EXPECT_EQ(later.InferenceForward(good, Matrix<float>::Zero(8, 3)).status().code(),
            absl::StatusCode::kInvalidArgument);
  ModelStage<float> ep(config, StageRange::Whole(config), 0, 2);
  EXPECT_EQ(ep.InferenceForward(good, {}).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace model
