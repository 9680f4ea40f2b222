#include "dualpipe/stage.h"

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dualpipe {
namespace {

// y = a * x on one float, recording the calls it receives.
class ScaleStage : public Stage {
 public:
  explicit ScaleStage(float a) : a_(a) {}

  size_t InputBytes() const override { return sizeof(float); }
  size_t OutputBytes() const override { return sizeof(float); }

  absl::Status Forward(int microbatch, absl::Span<const std::byte> input,
                       absl::Span<std::byte> output) override {
    if (input.size() != sizeof(float) || output.size() != sizeof(float)) {
      return absl::InvalidArgumentError("Forward needs one float in and out");
    }
    float x;
    std::memcpy(&x, input.data(), sizeof x);
    saved_[microbatch] = x;
    const float y = a_ * x;
    std::memcpy(output.data(), &y, sizeof y);
    calls_ += "F" + std::to_string(microbatch) + " ";
    return absl::OkStatus();
  }

  absl::Status BackwardInput(int microbatch, absl::Span<const std::byte> output_grad,
                             absl::Span<std::byte> input_grad) override {
    float dy;
    std::memcpy(&dy, output_grad.data(), sizeof dy);
    pending_[microbatch] = dy;
    const float dx = a_ * dy;
    std::memcpy(input_grad.data(), &dx, sizeof dx);
    calls_ += "I" + std::to_string(microbatch) + " ";
    return absl::OkStatus();
  }

  absl::Status BackwardWeight(int microbatch) override {
    grad_a_ += saved_.at(microbatch) * pending_.at(microbatch);
    saved_.erase(microbatch);
    pending_.erase(microbatch);
    calls_ += "W" + std::to_string(microbatch) + " ";
    return absl::OkStatus();
  }

  float grad_a() const { return grad_a_; }
  const std::string& calls() const { return calls_; }

 private:
  float a_;
  float grad_a_ = 0;
  std::map<int, float> saved_;
  std::map<int, float> pending_;
  std::string calls_;
};

absl::Span<const std::byte> Bytes(const float& f) {
  return {reinterpret_cast<const std::byte*>(&f), sizeof f};
}
absl::Span<std::byte> Bytes(float& f) { return {reinterpret_cast<std::byte*>(&f), sizeof f}; }

TEST(StageTest, DefaultBackwardIsInputThenWeight) {
  ScaleStage stage(3);
  float x = 2, y = 0, dy = 5, dx = 0;
  ASSERT_TRUE(stage.Forward(0, Bytes(x), Bytes(y)).ok());
  ASSERT_TRUE(stage.Backward(0, Bytes(dy), Bytes(dx)).ok());
  EXPECT_EQ(y, 6);
  EXPECT_EQ(dx, 15);
  EXPECT_EQ(stage.grad_a(), 10);
  EXPECT_EQ(stage.calls(), "F0 I0 W0 ");
}

TEST(StageTest, DefaultOverlapRunsForwardThenTheOtherStagesBackward) {
  ScaleStage first(2), second(4);
  float x0 = 1, y0 = 0, x1 = 3, y1 = 0, dy = 1, dx = 0;
  ASSERT_TRUE(second.Forward(0, Bytes(x0), Bytes(y0)).ok());
  ASSERT_TRUE(
      first.OverlappedForwardBackward(1, Bytes(x1), Bytes(y1), second, 0, Bytes(dy), Bytes(dx))
          .ok());
  EXPECT_EQ(y1, 6);
  EXPECT_EQ(dx, 4);
  EXPECT_EQ(second.grad_a(), 1);
  EXPECT_EQ(first.calls(), "F1 ");
  EXPECT_EQ(second.calls(), "F0 I0 W0 ");
  EXPECT_FALSE(first.Forward(2, {}, Bytes(y0)).ok());
}

}  // namespace
}  // namespace dualpipe
