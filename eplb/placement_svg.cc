#include "eplb/placement_svg.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace eplb {
namespace {

constexpr int kMargin = 10;
constexpr int kBoxWidth = 36;
constexpr int kBoxHeight = 18;
constexpr int kGpuWidth = kBoxWidth + 8;  // A GPU column with its padding.
constexpr int kNodeGap = 14;              // Between node frames.
constexpr int kTitleHeight = 22;          // Layer title line.
constexpr int kHeaderHeight = 30;         // Node and GPU labels above the boxes.
constexpr int kLayerGap = 16;

// White for no load to dark red for the layer's heaviest replica.
std::string Shade(double fraction) {
  const auto channel = [&](int from, int to) {
    return static_cast<int>(from + (to - from) * fraction + 0.5);
  };
  return absl::StrFormat("#%02x%02x%02x", channel(255, 165), channel(255, 30), channel(255, 30));
}

}  // namespace

std::string PlacementToSvg(const Placement& placement, const Matrix<double>& loads,
                           const BalancednessReport& report) {
  const int per_gpu = placement.replicas_per_gpu();
  const int gpus_per_node = placement.gpus_per_node();
  const int node_width = gpus_per_node * kGpuWidth + 8;
  const int width =
      2 * kMargin + placement.num_nodes * node_width + (placement.num_nodes - 1) * kNodeGap;
  const int layer_height = kTitleHeight + kHeaderHeight + per_gpu * (kBoxHeight + 2) + 8;
  const int height = 2 * kMargin + placement.num_layers() * layer_height +
                     (placement.num_layers() - 1) * kLayerGap;

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
      width, height, width, height, width, height);
  for (int layer = 0; layer < placement.num_layers(); ++layer) {
    const int top = kMargin + layer * (layer_height + kLayerGap);
    std::vector<double> replica_load(placement.num_replicas());
    for (int p = 0; p < placement.num_replicas(); ++p) {
      const int e = placement.phy2log(layer, p);
      replica_load[p] = loads(layer, e) / placement.logcnt(layer, e);
    }
    const double max_load = *std::max_element(replica_load.begin(), replica_load.end());
    absl::StrAppendFormat(&svg,
                          "<text x=\"%d\" y=\"%d\" font-size=\"13\" font-weight=\"bold\">"
                          "Layer %d (balancedness %.3f)</text>\n",
                          kMargin, top + 15, layer, report.per_layer[layer]);
    for (int node = 0; node < placement.num_nodes; ++node) {
      const int node_left = kMargin + node * (node_width + kNodeGap);
      const int node_top = top + kTitleHeight;
      absl::StrAppendFormat(&svg,
                            "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"4\" "
                            "fill=\"#f2f4f8\" stroke=\"#8090a8\"/>\n"
                            "<text x=\"%d\" y=\"%d\">Node %d</text>\n",
                            node_left, node_top, node_width, layer_height - kTitleHeight,
                            node_left + 4, node_top + 12, node);
      for (int local = 0; local < gpus_per_node; ++local) {
        const int gpu = node * gpus_per_node + local;
        const int x = node_left + 4 + local * kGpuWidth + (kGpuWidth - kBoxWidth) / 2;
        absl::StrAppendFormat(&svg, "<text x=\"%d\" y=\"%d\" font-size=\"9\">GPU %d</text>\n", x,
                              node_top + 26, gpu);
        for (int slot = 0; slot < per_gpu; ++slot) {
          const int p = gpu * per_gpu + slot;
          const double fraction = max_load > 0 ? replica_load[p] / max_load : 0.0;
          const int y = node_top + kHeaderHeight + slot * (kBoxHeight + 2);
          absl::StrAppendFormat(
              &svg,
              "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#404040\">"
              "<title>replica %d: expert %d, load %g</title></rect>\n"
              "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\">%d</text>\n",
              x, y, kBoxWidth, kBoxHeight, Shade(fraction), p, placement.phy2log(layer, p),
              replica_load[p], x + kBoxWidth / 2, y + 13, fraction > 0.6 ? "white" : "black",
              placement.phy2log(layer, p));
        }
      }
    }
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace eplb
