#include <string>

#include "dualpipe/dualpipe_schedules.h"
#include "dualpipe/render_summary.h"
#include "dualpipe/render_svg.h"
#include "dualpipe/render_trace.h"
#include "dualpipe/simulator.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace dualpipe {
namespace {

struct Fixture {
  Schedule schedule;
  OpCosts costs;
  Simulation simulation;
};

Fixture SimulateDualPipe(int ranks, int microbatches) {
  Fixture fixture;
  fixture.schedule = *GenerateDualPipe(ranks, microbatches);
  fixture.costs.forward_backward = 3;
  fixture.simulation = *Simulate(fixture.schedule, fixture.costs);
  return fixture;
}

int Count(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST(RenderSummaryTest, ListsEveryRankAndTotals) {
  const Fixture f = SimulateDualPipe(4, 8);
  const std::string summary = RenderSummary(f.schedule, f.simulation, f.costs);
  EXPECT_NE(summary.find("schedule dualpipe: 4 ranks, 8 micro-batches; costs F=1 B=2 W=1 F&B=3"),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("   0         24          2                 5                 2\n"),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("makespan 26, total bubble 8, mean bubble per rank 2, "
                         "max peak activations 5"),
            std::string::npos)
      << summary;
}

TEST(RenderSvgTest, DrawsOneCellPerPartAndFramesPairs) {
  const Fixture f = SimulateDualPipe(4, 8);
  int ops = 0;
  int pairs = 0;
  for (const auto& rank : f.schedule.ops) {
    for (const Op& op : rank) {
      ++ops;
      if (op.kind == OpKind::kForwardBackward) ++pairs;
    }
  }
  const std::string svg = RenderSvg(f.simulation, f.costs, "DualPipe <4 ranks>");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("DualPipe &lt;4 ranks&gt;"), std::string::npos);
  EXPECT_EQ(Count(svg, "stroke=\"#000\" stroke-width=\"2\"/>"), pairs + 1);  // +1: legend.
  EXPECT_EQ(Count(svg, "text-anchor=\"middle\""), ops + pairs);
  EXPECT_EQ(Count(svg, ">Rank "), 4);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(RenderTraceTest, IsJsonWithOneEventPerOp) {
  const Fixture f = SimulateDualPipe(4, 8);
  const nlohmann::json trace = nlohmann::json::parse(RenderChromeTrace(f.simulation));
  int complete = 0;
  for (const nlohmann::json& event : trace["traceEvents"]) {
    if (event["ph"] != "X") continue;
    ++complete;
    if (event["pid"] == 0 && event["name"] == "F0.3+B1.1") {
      EXPECT_EQ(event["cat"], "forward_backward");
      EXPECT_DOUBLE_EQ(event["dur"].get<double>(), 3000.0);
    }
  }
  int ops = 0;
  for (const auto& rank : f.schedule.ops) ops += rank.size();
  EXPECT_EQ(complete, ops);
  EXPECT_EQ(trace["traceEvents"][0]["name"], "process_name");
  EXPECT_EQ(trace["traceEvents"][0]["args"]["name"], "rank 0");
}

}  // namespace
}  // namespace dualpipe
