#include "dualpipe/render_svg.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "core/check.h"

namespace dualpipe {
namespace {

constexpr double kLabelWidth = 70;
constexpr double kRowHeight = 24;
constexpr double kTitleHeight = 28;
constexpr double kLegendHeight = 56;

// Fill for a part of kind `kind` on path `path`; path 1 (and up) uses the darker shade.
const char* Fill(OpKind kind, int path) {
  const bool dark = path > 0;
  switch (kind) {
    case OpKind::kForward:
      return dark ? "#d4880f" : "#f5b041";
    case OpKind::kBackward:
      return dark ? "#4ca82e" : "#82e05e";
    case OpKind::kBackwardInput:
      return dark ? "#8fcf6b" : "#c4efa6";
    case OpKind::kBackwardWeight:
      return dark ? "#3f86d1" : "#7db9f0";
    case OpKind::kForwardBackward:
      break;
  }
  return "#ffffff";
}

std::string Escape(absl::string_view text) {
  return absl::StrReplaceAll(text,
                             {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

void AppendCell(std::string& out, double x, double y, double width, OpKind kind, int path,
                int microbatch) {
  absl::StrAppendFormat(&out,
                        "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" "
                        "stroke=\"#555\" stroke-width=\"0.5\"/>\n",
                        x, y, width, kRowHeight, Fill(kind, path));
  absl::StrAppendFormat(&out,
                        "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" text-anchor=\"middle\" "
                        "dominant-baseline=\"central\">%d</text>\n",
                        x + width / 2, y + kRowHeight / 2, microbatch);
}

void AppendLegend(std::string& out, double y) {
  const struct {
    OpKind kind;
    const char* label;
  } entries[] = {{OpKind::kForward, "Forward"},
                 {OpKind::kBackward, "Backward"},
                 {OpKind::kBackwardInput, "Backward for input"},
                 {OpKind::kBackwardWeight, "Backward for weights"}};
  double x = kLabelWidth;
  for (const auto& [kind, label] : entries) {
    for (int path = 0; path < 2; ++path) {
      absl::StrAppendFormat(&out,
                            "<rect x=\"%.2f\" y=\"%.2f\" width=\"16\" height=\"16\" fill=\"%s\" "
                            "stroke=\"#555\" stroke-width=\"0.5\"/>\n",
                            x + 18 * path, y, Fill(kind, path));
    }
    absl::StrAppendFormat(&out, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"12\">%s</text>\n", x + 40,
                          y + 12, label);
    x += 60 + 7.0 * absl::string_view(label).size();
  }
  absl::StrAppendFormat(&out,
                        "<rect x=\"%.2f\" y=\"%.2f\" width=\"34\" height=\"16\" fill=\"none\" "
                        "stroke=\"#000\" stroke-width=\"2\"/>\n"
                        "<text x=\"%.2f\" y=\"%.2f\" font-size=\"12\">Overlapped forward &amp; "
                        "backward</text>\n",
                        x, y, x + 40, y + 12);
  absl::StrAppendFormat(&out,
                        "<text x=\"%.2f\" y=\"%.2f\" font-size=\"12\">Light: path 0 (direction "
                        "from rank 0, or chunk 0); dark: path 1. Numbers: micro-batch within the "
                        "path. Time runs left to right.</text>\n",
                        kLabelWidth, y + 34);
}

}  // namespace

std::string RenderSvg(const Simulation& simulation, const OpCosts& costs, absl::string_view title,
                      double pixels_per_unit) {
  DSMOE_CHECK(pixels_per_unit > 0, "RenderSvg: pixels_per_unit = ", pixels_per_unit);
  const int num_ranks = static_cast<int>(simulation.timeline.size());
  const double width = kLabelWidth + simulation.makespan * pixels_per_unit + 20;
  const double height = kTitleHeight + num_ranks * kRowHeight + kLegendHeight;
  std::string out = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\" font-family=\"Helvetica, Arial, sans-serif\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
      "<text x=\"%.2f\" y=\"18\" font-size=\"14\" font-weight=\"bold\">%s</text>\n",
      std::max(width, 900.0), height, std::max(width, 900.0), height, kLabelWidth, Escape(title));
  const double fraction_forward =
      costs.forward + costs.backward > 0 ? costs.forward / (costs.forward + costs.backward) : 0.5;
  for (int rank = 0; rank < num_ranks; ++rank) {
    const double y = kTitleHeight + rank * kRowHeight;
    absl::StrAppendFormat(&out,
                          "<text x=\"4\" y=\"%.2f\" font-size=\"12\" font-weight=\"bold\" "
                          "dominant-baseline=\"central\">Rank %d</text>\n",
                          y + kRowHeight / 2, rank);
    absl::StrAppendFormat(&out,
                          "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                          "fill=\"none\" stroke=\"#ccc\" stroke-width=\"0.5\"/>\n",
                          kLabelWidth, y, simulation.makespan * pixels_per_unit, kRowHeight);
    for (const TimedOp& timed : simulation.timeline[rank]) {
      const double x = kLabelWidth + timed.start * pixels_per_unit;
      const double w = (timed.end - timed.start) * pixels_per_unit;
      const Op& op = timed.op;
      if (op.kind != OpKind::kForwardBackward) {
        AppendCell(out, x, y, w, op.kind, op.path, op.microbatch);
        continue;
      }
      const double forward_width = w * fraction_forward;
      AppendCell(out, x, y, forward_width, OpKind::kForward, op.path, op.microbatch);
      AppendCell(out, x + forward_width, y, w - forward_width, OpKind::kBackward, op.backward_path,
                 op.backward_microbatch);
      absl::StrAppendFormat(&out,
                            "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                            "fill=\"none\" stroke=\"#000\" stroke-width=\"2\"/>\n",
                            x + 1, y + 1, w - 2, kRowHeight - 2);
    }
  }
  AppendLegend(out, kTitleHeight + num_ranks * kRowHeight + 10);
  out += "</svg>\n";
  return out;
}

}  // namespace dualpipe
