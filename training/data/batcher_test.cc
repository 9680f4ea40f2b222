#include "training/data/batcher.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace training::data {
namespace {

using ::testing::HasSubstr;

// Documents of lengths 1..n with token values d * 100 + i.
TokenizedCorpus Corpus(int documents) {
  TokenizedCorpus c;
  c.offsets.push_back(0);
  for (int d = 0; d < documents; ++d) {
    for (int i = 0; i <= d; ++i) c.tokens.push_back(1000 + d * 100 + i);
    c.offsets.push_back(static_cast<int64_t>(c.tokens.size()));
    c.hashes.push_back(DocumentHash("document " + std::to_string(d)));
  }
  return c;
}

std::vector<int32_t> Iota(int n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(PackTest, SplitsAndAddsEos) {
  const TokenizedCorpus c = Corpus(40);
  const std::vector<int32_t> all = *PackDocuments(c, Split::kTrain, 0.0, 7);
  EXPECT_EQ(all.size(), c.tokens.size() + 40);
  EXPECT_EQ(all[0], 1000);
  EXPECT_EQ(all[1], 7);  // EOS after the one-token first document
  const std::vector<int32_t> train = *PackDocuments(c, Split::kTrain, 0.25, 7);
  const std::vector<int32_t> validation = *PackDocuments(c, Split::kValidation, 0.25, 7);
  EXPECT_EQ(train.size() + validation.size(), all.size());
  EXPECT_GT(validation.size(), 0u);
  // Adding documents does not move the old ones between splits.
  const std::vector<int32_t> more = *PackDocuments(Corpus(60), Split::kValidation, 0.25, 7);
  EXPECT_TRUE(std::equal(validation.begin(), validation.end(), more.begin()));
  EXPECT_THAT(std::string(PackDocuments(c, Split::kValidation, 0.0, 7).status().message()),
              HasSubstr("validation split has no document"));
}

TEST(BatcherTest, SequencesOverlapByOneAndCoverAnEpoch) {
  BatcherOptions options{.seq_len = 4, .batch_size = 2, .shuffle = false};
  Batcher b = *Batcher::Create(Iota(41), options);  // 10 sequences of 5 tokens
  EXPECT_EQ(b.num_sequences(), 10);
  EXPECT_EQ(b.steps_per_epoch(), 5);
  std::vector<int32_t> batch;
  b.Next(&batch);
  EXPECT_EQ(batch, (std::vector<int32_t>{0, 1, 2, 3, 4, 4, 5, 6, 7, 8}));
  for (int i = 0; i < 4; ++i) b.Next(&batch);
  EXPECT_EQ(batch.back(), 40);
  EXPECT_EQ(b.state(), (DataState{0, 10}));
  b.Next(&batch);  // wraps to epoch 1
  EXPECT_EQ(b.state(), (DataState{1, 2}));
  EXPECT_EQ(batch[0], 0);
}

TEST(BatcherTest, ShuffleIsDeterministicPerSeedAndEpoch) {
  BatcherOptions options{.seq_len = 3, .batch_size = 4, .seed = 42};
  Batcher a = *Batcher::Create(Iota(400), options);
  Batcher b = *Batcher::Create(Iota(400), options);
  options.seed = 43;
  Batcher c = *Batcher::Create(Iota(400), options);
  std::vector<int32_t> x, y, z;
  bool differs = false;
  std::set<int32_t> firsts;
  for (int step = 0; step < a.steps_per_epoch(); ++step) {
    a.Next(&x);
    b.Next(&y);
    c.Next(&z);
    EXPECT_EQ(x, y);
    differs |= x != z;
    for (int r = 0; r < 4; ++r) firsts.insert(x[r * 4]);
  }
  EXPECT_TRUE(differs);
  // Each sequence at most once; the last partial step (133 % 4 = 1 sequence) is dropped.
  EXPECT_EQ(static_cast<int64_t>(firsts.size()), a.steps_per_epoch() * 4);
}

TEST(BatcherTest, RanksSplitEachStepDisjointly) {
  std::vector<std::vector<int32_t>> global(3);
  BatcherOptions whole{.seq_len = 5, .batch_size = 6, .seed = 7};
  Batcher one = *Batcher::Create(Iota(1000), whole);
  std::vector<int32_t> all;
  one.Next(&all);
  std::vector<int32_t> joined;
  for (int rank = 0; rank < 3; ++rank) {
    BatcherOptions options{.seq_len = 5, .batch_size = 2, .dp_rank = rank, .dp_size = 3, .seed = 7};
    Batcher b = *Batcher::Create(Iota(1000), options);
    std::vector<int32_t> batch;
    b.Next(&batch);
    joined.insert(joined.end(), batch.begin(), batch.end());
  }
  EXPECT_EQ(joined, all);  // dp ranks together see what one rank with 3x the batch sees
}

TEST(BatcherTest, ResumedRunSeesTheSameBatches) {
  BatcherOptions options{.seq_len = 8, .batch_size = 3, .dp_rank = 1, .dp_size = 2, .seed = 5};
  Batcher uninterrupted = *Batcher::Create(Iota(500), options);
  Batcher first = *Batcher::Create(Iota(500), options);
  std::vector<int32_t> a, b;
  for (int step = 0; step < 13; ++step) {
    uninterrupted.Next(&a);
    first.Next(&b);
  }
  const std::string saved = first.state().Serialize();
  EXPECT_EQ(saved, "epoch=1 position=18");
  Batcher resumed = *Batcher::Create(Iota(500), options);
  ASSERT_TRUE(resumed.Restore(*DataState::Parse(saved)).ok());
  for (int step = 0; step < 20; ++step) {
    uninterrupted.Next(&a);
    resumed.Next(&b);
    EXPECT_EQ(a, b) << "step " << step;
  }
  EXPECT_FALSE(resumed.Restore({0, 5}).ok());  // not a step boundary
}

TEST(BatcherTest, BadOptionsAndSmallCorpora) {
  EXPECT_THAT(
      std::string(Batcher::Create(Iota(10), {.seq_len = 8, .batch_size = 2}).status().message()),
      HasSubstr("too small: 10 tokens make 1 sequences of 9 tokens"));
  EXPECT_FALSE(Batcher::Create(Iota(100), {.seq_len = 0}).ok());
  EXPECT_FALSE(Batcher::Create(Iota(100), {.seq_len = 4, .dp_rank = 1, .dp_size = 1}).ok());
  EXPECT_FALSE(DataState::Parse("epoch=1").ok());
  EXPECT_FALSE(DataState::Parse("epoch=x position=1").ok());
  EXPECT_FALSE(DataState::Parse("epoch=-1 position=1").ok());
  EXPECT_EQ(*DataState::Parse("epoch=2 position=30"), (DataState{2, 30}));
}

}  // namespace
}  // namespace training::data
