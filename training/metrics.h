// Training metrics: one JSON object per logged step in OUTPUT_DIR/metrics.jsonl, a progress bar or
// log lines on the console, and an SVG of the loss curves (OUTPUT_DIR/loss.svg).
#ifndef TRAINING_METRICS_H_
#define TRAINING_METRICS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace training {

struct StepMetrics {
  int64_t step = 0;
  double loss = 0;
  std::optional<double> val_loss;
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_second = 0;
  double mfu = 0;              // model FLOPs per second / the machine's peak
  double expert_balance = 1;   // worst MoE layer's max / mean expert load
  double compute_seconds = 0;  // world rank 0's time in ops during the step
  double wait_seconds = 0;     // ... and waiting for activations or gradients
  double step_seconds = 0;
  int64_t tokens = 0;  // seen so far

  // {"step":..,"loss":..,"lr":..,"grad_norm":..,"tokens_per_second":..,"mfu":..,...}; val_loss
  // and val_perplexity when present.
  std::string ToJson() const;
};

// Appends to OUTPUT_DIR/metrics.jsonl (a fresh file unless `append`); one writer per run.
class MetricsWriter {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsWriter>> Open(const std::string& output_dir,
                                                             bool append);
  ~MetricsWriter();
  absl::Status Write(const StepMetrics& metrics);
  // Writes OUTPUT_DIR/loss.svg from every record of metrics.jsonl (a resumed run included).
  absl::Status WriteLossCurve() const;

 private:
  MetricsWriter(std::string output_dir, std::FILE* file) : output_dir_(output_dir), file_(file) {}
  std::string output_dir_;
  std::FILE* file_;
};

// An SVG line chart of training loss (and validation loss where present) against step.
std::string LossCurveSvg(const std::vector<StepMetrics>& records);

// Console reporting: a progress bar with ETA redrawn in place on a terminal, or one plain line
// per report. Inactive reporters print nothing.
class ProgressReporter {
 public:
  ProgressReporter(int64_t total_steps, bool bar) : total_(total_steps), bar_(bar) {}
  void Start(int64_t step);
  // Prints the step's line (torchtitan-style: step, loss, grad norm, lr, tokens/s, MFU, balance,
  // compute / wait) or redraws the bar.
  void Report(const StepMetrics& metrics);
  void Finish();

 private:
  int64_t total_;
  bool bar_;
  int64_t start_step_ = 0;
  std::chrono::steady_clock::time_point start_;
  bool drawn_ = false;
};

}  // namespace training

#endif  // TRAINING_METRICS_H_
