// SVG picture of a simulated schedule in the style of the figures in DeepSeek's DualPipe README:
// ranks as rows, time as columns, cells coloured by op kind (forward orange, backward green,
// backward-for-inputs light green, backward-for-weights blue; path 1 a darker shade), the two
// halves of an overlapped pair framed together, the micro-batch number in each cell.
#ifndef DUALPIPE_RENDER_SVG_H_
#define DUALPIPE_RENDER_SVG_H_

#include <string>

#include "absl/strings/string_view.h"
#include "dualpipe/simulator.h"

namespace dualpipe {

// Renderers are pure functions of their arguments; thread-safe.

// Returns a standalone SVG document titled `title` (escaped). Cells are placed at their simulated
// times, `pixels_per_unit` pixels per cost unit (must be > 0, else aborts); an overlapped pair is
// split into its forward and backward parts in proportion to costs.forward and costs.backward.
std::string RenderSvg(const Simulation& simulation, const OpCosts& costs, absl::string_view title,
                      double pixels_per_unit = 24);

}  // namespace dualpipe

#endif  // DUALPIPE_RENDER_SVG_H_
