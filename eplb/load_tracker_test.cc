#include "eplb/load_tracker.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace eplb {
namespace {

Matrix<double> Counts(double a, double b) {
  return Matrix<double>(1, 2, std::vector<double>{a, b});
}

TEST(LoadTracker, WindowSumKeepsTheLastSteps) {
  absl::StatusOr<std::unique_ptr<LoadTracker>> tracker = LoadTracker::Create(1, 2, 2, 0.5);
  ASSERT_TRUE(tracker.ok()) << tracker.status();
  EXPECT_EQ((*tracker)->WindowSum(), Matrix<double>(1, 2));
  ASSERT_TRUE((*tracker)->Record(Counts(1, 10)).ok());
  EXPECT_EQ((*tracker)->WindowSum(), Counts(1, 10));
  ASSERT_TRUE((*tracker)->Record(Counts(2, 20)).ok());
  ASSERT_TRUE((*tracker)->Record(Counts(4, 40)).ok());
  EXPECT_EQ((*tracker)->WindowSum(), Counts(6, 60));
  EXPECT_EQ((*tracker)->steps(), 3);
}

TEST(LoadTracker, EmaStartsAtTheFirstStep) {
  absl::StatusOr<std::unique_ptr<LoadTracker>> tracker = LoadTracker::Create(1, 2, 4, 0.75);
  ASSERT_TRUE(tracker.ok());
  ASSERT_TRUE((*tracker)->Record(Counts(8, 0)).ok());
  EXPECT_EQ((*tracker)->Ema(), Counts(8, 0));
  ASSERT_TRUE((*tracker)->Record(Counts(0, 4)).ok());
  EXPECT_EQ((*tracker)->Ema(), Counts(6, 1));
}

TEST(LoadTracker, ResetForgetsEverything) {
  absl::StatusOr<std::unique_ptr<LoadTracker>> tracker = LoadTracker::Create(1, 2, 4, 0.5);
  ASSERT_TRUE(tracker.ok());
  ASSERT_TRUE((*tracker)->Record(Counts(8, 2)).ok());
  (*tracker)->Reset();
  EXPECT_EQ((*tracker)->steps(), 0);
  EXPECT_EQ((*tracker)->WindowSum(), Matrix<double>(1, 2));
  ASSERT_TRUE((*tracker)->Record(Counts(3, 5)).ok());
  EXPECT_EQ((*tracker)->Ema(), Counts(3, 5));
}

TEST(LoadTracker, RejectsBadCountsWithoutRecording) {
  absl::StatusOr<std::unique_ptr<LoadTracker>> tracker = LoadTracker::Create(1, 2, 4, 0.5);
  ASSERT_TRUE(tracker.ok());
  EXPECT_EQ((*tracker)->Record(Matrix<double>(2, 2)).code(), absl::StatusCode::kInvalidArgument);
  absl::Status negative = (*tracker)->Record(Counts(1, -1));
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(negative.message(), "counts[0][1] is -1: counts must be finite and >= 0");
  EXPECT_EQ((*tracker)->steps(), 0);
}

TEST(LoadTracker, RejectsBadConfiguration) {
  EXPECT_EQ(LoadTracker::Create(0, 2, 4, 0.5).status().message(),
            "num_layers must be positive, got 0");
  EXPECT_FALSE(LoadTracker::Create(1, 0, 4, 0.5).ok());
  EXPECT_EQ(LoadTracker::Create(1, 2, 0, 0.5).status().message(), "window must be positive, got 0");
  EXPECT_EQ(LoadTracker::Create(1, 2, 4, 1.0).status().message(),
            "ema_decay must be in [0, 1), got 1");
}

TEST(LoadTracker, RecordsFromManyThreads) {
  absl::StatusOr<std::unique_ptr<LoadTracker>> tracker = LoadTracker::Create(1, 2, 1000, 0.5);
  ASSERT_TRUE(tracker.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) ASSERT_TRUE((*tracker)->Record(Counts(1, 2)).ok());
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ((*tracker)->steps(), 400);
  EXPECT_EQ((*tracker)->WindowSum(), Counts(400, 800));
}

}  // namespace
}  // namespace eplb
