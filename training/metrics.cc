#include "training/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "training/checkpoint.h"

namespace training {
namespace fs = std::filesystem;

std::string StepMetrics::ToJson() const {
  nlohmann::json json;
  json["step"] = step;
  json["loss"] = loss;
  json["lr"] = lr;
  json["grad_norm"] = grad_norm;
  json["tokens_per_second"] = tokens_per_second;
  json["mfu"] = mfu;
  json["expert_balance"] = expert_balance;
  json["compute_seconds"] = compute_seconds;
  json["wait_seconds"] = wait_seconds;
  json["step_seconds"] = step_seconds;
  json["tokens"] = tokens;
  if (val_loss.has_value()) {
    json["val_loss"] = *val_loss;
    json["val_perplexity"] = std::exp(*val_loss);
  }
  return json.dump();
}

absl::StatusOr<std::unique_ptr<MetricsWriter>> MetricsWriter::Open(const std::string& output_dir,
                                                                   bool append) {
  std::error_code error;
  fs::create_directories(output_dir, error);
  const std::string path = (fs::path(output_dir) / "metrics.jsonl").string();
  std::FILE* file = std::fopen(path.c_str(), append ? "a" : "w");
  if (file == nullptr) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return std::unique_ptr<MetricsWriter>(new MetricsWriter(output_dir, file));
}

MetricsWriter::~MetricsWriter() { std::fclose(file_); }

absl::Status MetricsWriter::Write(const StepMetrics& metrics) {
  const std::string line = metrics.ToJson() + "\n";
  if (std::fputs(line.c_str(), file_) < 0 || std::fflush(file_) != 0) {
    return absl::UnavailableError("cannot append to metrics.jsonl");
  }
  return absl::OkStatus();
}

absl::Status MetricsWriter::WriteLossCurve() const {
  std::ifstream in(fs::path(output_dir_) / "metrics.jsonl");
  std::vector<StepMetrics> records;
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_discarded() || !json.contains("step") || !json["step"].is_number() ||
        !json.contains("loss") || !json["loss"].is_number()) {
      continue;
    }
    StepMetrics m;
    m.step = json["step"].get<int64_t>();
    m.loss = json["loss"].get<double>();
    if (json.contains("val_loss") && json["val_loss"].is_number()) {
      m.val_loss = json["val_loss"].get<double>();
    }
    records.push_back(m);
  }
  return WriteFileSynced((fs::path(output_dir_) / "loss.svg").string(), LossCurveSvg(records));
}

std::string LossCurveSvg(const std::vector<StepMetrics>& records) {
  constexpr double kWidth = 720, kHeight = 400, kLeft = 60, kRight = 20, kTop = 30, kBottom = 40;
  double max_step = 1, low = 1e300, high = -1e300;
  for (const StepMetrics& m : records) {
    max_step = std::max(max_step, static_cast<double>(m.step));
    for (double v : {m.loss, m.val_loss.value_or(m.loss)}) {
      low = std::min(low, v);
      high = std::max(high, v);
    }
  }
  if (records.empty()) low = 0, high = 1;
  if (high - low < 1e-9) high = low + 1;
  auto x = [&](double step) { return kLeft + (kWidth - kLeft - kRight) * step / max_step; };
  auto y = [&](double v) { return kTop + (kHeight - kTop - kBottom) * (high - v) / (high - low); };
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
      "fill=\"white\"/>\n",
      kWidth, kHeight);
  absl::StrAppendFormat(
      &svg,
      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
      kLeft, kHeight - kBottom, kWidth - kRight, kHeight - kBottom, kLeft, kTop, kLeft,
      kHeight - kBottom);
  for (int i = 0; i <= 4; ++i) {
    const double v = low + (high - low) * i / 4;
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n",
                          kLeft - 5, y(v) + 4, v);
    const double step = max_step * i / 4;
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n",
                          x(step), kHeight - kBottom + 16, step);
  }
  absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step</text>\n",
                        (kWidth + kLeft) / 2, kHeight - 6);
  std::string train, val;
  for (const StepMetrics& m : records) {
    absl::StrAppendFormat(&train, "%.1f,%.1f ", x(m.step), y(m.loss));
    if (m.val_loss.has_value())
      absl::StrAppendFormat(&val, "%.1f,%.1f ", x(m.step), y(*m.val_loss));
  }
  absl::StrAppendFormat(&svg,
                        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" "
                        "points=\"%s\"/>\n",
                        train);
  if (!val.empty()) {
    absl::StrAppendFormat(&svg,
                          "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" "
                          "points=\"%s\"/>\n",
                          val);
  }
  absl::StrAppendFormat(
      &svg,
      "<text x=\"%.1f\" y=\"18\" fill=\"#1f77b4\">training loss</text>\n"
      "<text x=\"%.1f\" y=\"18\" fill=\"#d62728\">validation loss</text>\n</svg>\n",
      kLeft, kLeft + 120);
  return svg;
}

void ProgressReporter::Start(int64_t step) {
  start_step_ = step;
  start_ = std::chrono::steady_clock::now();
}

void ProgressReporter::Report(const StepMetrics& m) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t done = m.step - start_step_;
  const double eta = done > 0 ? elapsed / done * (total_ - m.step) : 0;
  const std::string val =
      m.val_loss.has_value() ? absl::StrFormat("  val_loss %.4f", *m.val_loss) : "";
  if (!bar_) {
    std::printf(
        "step %5lld/%lld  loss %.4f%s  grad_norm %.3f  lr %.2e  tok/s %.0f  mfu %.1f%%  "
        "balance %.2f  compute %.2fs wait %.2fs\n",
        static_cast<long long>(m.step), static_cast<long long>(total_), m.loss, val.c_str(),
        m.grad_norm, m.lr, m.tokens_per_second, 100 * m.mfu, m.expert_balance, m.compute_seconds,
        m.wait_seconds);
    std::fflush(stdout);
    return;
  }
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * m.step / std::max<int64_t>(1, total_));
  std::printf("\r[%s%s] %lld/%lld  loss %.4f%s  tok/s %.0f  mfu %.1f%%  ETA %dm%02ds   ",
              std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
              static_cast<long long>(m.step), static_cast<long long>(total_), m.loss, val.c_str(),
              m.tokens_per_second, 100 * m.mfu, static_cast<int>(eta) / 60,
              static_cast<int>(eta) % 60);
  std::fflush(stdout);
  drawn_ = true;
}

void ProgressReporter::Finish() {
  if (drawn_) std::printf("\n");
}

}  // namespace training
