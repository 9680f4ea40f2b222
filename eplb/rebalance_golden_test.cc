// Golden tests: the deepseek policy against outputs worked out from DeepSeek's eplb.py for the
// cases in testdata/ (ties, float32 rounding, hierarchical and global policies, several layers).
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "eplb/loads_csv.h"
#include "eplb/rebalance.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace eplb {
namespace {

struct GoldenCase {
  std::string loads;
  int replicas, groups, nodes, gpus;
};

std::string GoldenPath(const GoldenCase& c) {
  std::ostringstream path;
  path << "eplb/testdata/" << c.loads << "_r" << c.replicas << "_g" << c.groups << "_n" << c.nodes
       << "_p" << c.gpus << ".deepseek.json";
  return path.str();
}

nlohmann::json ToJson(const Matrix<int32_t>& m) {
  nlohmann::json rows = nlohmann::json::array();
  for (int r = 0; r < m.rows(); ++r) {
    rows.push_back(std::vector<int32_t>(m.row(r).begin(), m.row(r).end()));
  }
  return rows;
}

class GoldenTest : public testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, MatchesTheReference) {
  const GoldenCase& c = GetParam();
  absl::StatusOr<Matrix<double>> loads = ReadLoadsCsv("eplb/testdata/" + c.loads + ".csv");
  ASSERT_TRUE(loads.ok()) << loads.status();
  std::ifstream golden_file(GoldenPath(c));
  ASSERT_TRUE(golden_file) << GoldenPath(c);
  const nlohmann::json golden = nlohmann::json::parse(golden_file);

  absl::StatusOr<Placement> placement =
      Rebalance(*loads, c.replicas, c.groups, c.nodes, c.gpus, Policy::kDeepSeek);
  ASSERT_TRUE(placement.ok()) << placement.status();
  EXPECT_EQ(ToJson(placement->phy2log), golden["phy2log"]);
  EXPECT_EQ(ToJson(placement->logcnt), golden["logcnt"]);
  nlohmann::json log2phy = nlohmann::json::array();
  for (int layer = 0; layer < placement->num_layers(); ++layer) {
    nlohmann::json experts = nlohmann::json::array();
    for (int e = 0; e < placement->num_experts(); ++e) {
      absl::Span<const int32_t> replicas = placement->Log2Phy(layer, e);
      experts.push_back(std::vector<int32_t>(replicas.begin(), replicas.end()));
    }
    log2phy.push_back(experts);
  }
  EXPECT_EQ(log2phy, golden["log2phy"]);
}

INSTANTIATE_TEST_SUITE_P(
    Reference, GoldenTest,
    testing::Values(GoldenCase{"deepseek_example", 16, 4, 2, 8},
                    GoldenCase{"deepseek_example", 16, 3, 2, 8}, GoldenCase{"ties", 12, 2, 2, 4},
                    GoldenCase{"float32", 16, 4, 2, 4}, GoldenCase{"float32", 24, 2, 3, 6},
                    GoldenCase{"random_32", 48, 8, 4, 16}, GoldenCase{"random_32", 48, 8, 3, 12}));

}  // namespace
}  // namespace eplb
