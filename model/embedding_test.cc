#include "model/embedding.h"

#include "gtest/gtest.h"
#include "model/init.h"
#include "model/internal/gradient_check.h"

namespace model {
namespace {

TEST(EmbeddingTest, ForwardGathersRows) {
  Embedding<float> embedding("e", 3, 2);
  embedding.Params()[0]->value << 0, 1, 2, 3, 4, 5;
  Embedding<float>::Context ctx;
  const Matrix<float> y = embedding.Forward({2, 0, 2}, &ctx);
  Matrix<float> expected(3, 2);
  expected << 4, 5, 0, 1, 4, 5;
  EXPECT_TRUE(y == expected);
}

class EmbeddingGradientTest : public ::testing::Test {
 protected:
  using Ids = std::vector<int32_t>;
  EmbeddingGradientTest() { InitParams(embedding_.Params(), 1.0, 3); }
  Embedding<double> embedding_{"e", 5, 3};
  test_util::LayerCalls<Embedding<double>, Ids> calls_{
      [this](const Ids& ids, Embedding<double>::Context* ctx) {
        return embedding_.Forward(ids, ctx);
      },
      [this](Matrix<double> dy, Embedding<double>::Context* ctx) {
        embedding_.BackwardInput(std::move(dy), ctx);
        return Matrix<double>();
      }};
};

TEST_F(EmbeddingGradientTest, MatchesFiniteDifferences) {
  test_util::ExpectLayerGradientsMatch(&embedding_, calls_, Ids{1, 4, 1, 0});
}

TEST_F(EmbeddingGradientTest, DeferredBackwardWeightIsExact) {
  test_util::ExpectDeferredBackwardWeightExact(&embedding_, calls_, Ids{1, 4, 1}, Ids{4, 2});
}

TEST(EmbeddingDeathTest, RejectsIdOutsideVocabulary) {
  Embedding<float> embedding("e", 3, 2);
  Embedding<float>::Context ctx;
  EXPECT_DEATH(embedding.Forward({3}, &ctx), "token id 3");
}

}  // namespace
}  // namespace model
