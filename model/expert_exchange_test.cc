#include "model/expert_exchange.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/local_communicator.h"
#include "core/status_macros.h"
#include "gtest/gtest.h"
#include "model/init.h"

namespace model {
namespace {

// Runs body(ep) on `ranks` local ranks (threads) and EXPECTs every rank to return OK.
void RunRanks(int ranks, const std::function<absl::Status(comm::Communicator&)>& body) {
  const std::vector<absl::Status> statuses = comm::RunLocalRanks(ranks, body);
  for (int r = 0; r < ranks; ++r) EXPECT_TRUE(statuses[r].ok()) << "rank " << r << statuses[r];
}

// Row i of expert e sent by rank s holds (s, e, i) in its two columns as s * 100 + e and i.
Matrix<float> Row(int s, int64_t e, int64_t i) {
  Matrix<float> row(1, 2);
  row << static_cast<float>(s * 100 + e), static_cast<float>(i);
  return row;
}

// 3 ranks, 6 experts (2 local): rank s sends (s + e) % 3 rows to expert e.
TEST(ExpertExchangeTest, RowsReachTheirExpertsAndComeBack) {
  constexpr int kRanks = 3;
  constexpr int64_t kExperts = 6, kLocal = 2;
  std::vector<ExpertRows<float>> send(kRanks);
  for (int s = 0; s < kRanks; ++s) {
    for (int64_t e = 0; e < kExperts; ++e) send[s].expert_counts.push_back((s + e) % 3);
    send[s].rows.resize(0, 2);
    for (int64_t e = 0; e < kExperts; ++e) {
      for (int64_t i = 0; i < send[s].expert_counts[e]; ++i) {
        send[s].rows.conservativeResize(send[s].rows.rows() + 1, 2);
        send[s].rows.row(send[s].rows.rows() - 1) = Row(s, e, i);
      }
    }
  }
  std::vector<ExpertInput> received(kRanks);
  std::vector<Matrix<float>> returned(kRanks), resent(kRanks);
  RunRanks(kRanks, [&](comm::Communicator& ep) -> absl::Status {
    const int r = ep.rank();
    ASSIGN_OR_RETURN(received[r], DispatchToExperts(ep, send[r]));
    ASSIGN_OR_RETURN(
        resent[r], SendToExperts(ep, send[r].rows, send[r].expert_counts, received[r].recv_counts));
    ASSIGN_OR_RETURN(returned[r], ReturnFromExperts(ep, received[r].rows, received[r].recv_counts,
                                                    send[r].expert_counts));
    return absl::OkStatus();
  });
  for (int d = 0; d < kRanks; ++d) {
    // Source-major: every source's rows for local expert 0, then for local expert 1.
    std::vector<int64_t> counts;
    Matrix<float> expected(0, 2);
    for (int s = 0; s < kRanks; ++s) {
      for (int64_t l = 0; l < kLocal; ++l) {
        const int64_t e = d * kLocal + l;
        counts.push_back((s + e) % 3);
        for (int64_t i = 0; i < counts.back(); ++i) {
          expected.conservativeResize(expected.rows() + 1, 2);
          expected.row(expected.rows() - 1) = Row(s, e, i);
        }
      }
    }
    EXPECT_EQ(received[d].recv_counts, counts) << d;
    EXPECT_EQ(received[d].rows, expected) << d;
    EXPECT_EQ(resent[d], expected) << d;
    EXPECT_EQ(returned[d], send[d].rows) << d;
  }
}

TEST(ExpertExchangeTest, SumsLoadsAndGradientsOverTheGroup) {
  constexpr int kRanks = 4;
  std::vector<std::vector<int64_t>> sums(kRanks);
  std::vector<Matrix<float>> grads(kRanks);
  RunRanks(kRanks, [&](comm::Communicator& ep) -> absl::Status {
    const int r = ep.rank();
    ASSIGN_OR_RETURN(sums[r], SumOverGroup(ep, {r, 10 * r, 1}));
    Param<float> weight("w", 2, 3);
    Param<float> bias("b", 1, 3, ParamKind::kBuffer);
    weight.grad.setConstant(static_cast<float>(r + 1));
    bias.value.setConstant(static_cast<float>(r));
    RETURN_IF_ERROR(AllReduceGradients(ep, {&weight, &bias}));
    EXPECT_EQ(bias.value, Matrix<float>::Constant(1, 3, static_cast<float>(r)));  // not a grad
    grads[r] = weight.grad;
    return absl::OkStatus();
  });
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(sums[r], (std::vector<int64_t>{6, 60, 4}));
    EXPECT_EQ(grads[r], Matrix<float>::Constant(2, 3, 10));
  }
}

MoeConfig TestConfig() {
  MoeConfig moe;
  moe.set_num_routed_experts(8);
  moe.set_num_shared_experts(1);
  moe.set_top_k(3);
  moe.set_num_groups(4);
  moe.set_topk_groups(2);
  moe.set_route_scale(2.5);
  moe.set_gate_bias(true);  // V3's gate (the reference has the bias only at width 7168)
  moe.set_expert_intermediate_size(4);
  moe.set_bias_update_speed(0.01f);
  return moe;
}

// Float: relative error of one float sum of k terms is at most about k * 2^-24; EP changes how
// Eigen groups the products (another row count can pick another product kernel) and sums weight
// gradients per rank before the all-reduce. k <= 64 here, so 1e-5 bounds the difference while
// a misrouted row (an O(1) error) fails.
constexpr float kTolerance = 1e-5f;

// The MoE block with expert parallelism over 2 and 4 local ranks, each routing its own tokens,
// gives the outputs, input gradients and weight gradients of one rank that sees all the tokens,
// and the gate's bias update from the group's summed loads keeps every rank's gate identical.
class MoeExpertParallelTest : public ::testing::TestWithParam<int> {};

TEST_P(MoeExpertParallelTest, MatchesOneRank) {
  const int ranks = GetParam();
  constexpr int64_t kHidden = 6, kTokens = 5;
  const Matrix<float> x = RandomMatrix<float>(ranks * kTokens, kHidden, 2);
  const Matrix<float> dy = RandomMatrix<float>(ranks * kTokens, kHidden, 3);

  Moe<float> whole("m.", kHidden, TestConfig());
  InitParams(whole.Params(), 0.5, 1);
  Moe<float>::Context ctx;
  const Matrix<float> y_ref = whole.Forward(x, {kTokens}, &ctx);
  const Matrix<float> dx_ref = whole.BackwardInput(dy, &ctx);
  const std::vector<int64_t> loads_ref = ctx.loads;
  whole.BackwardWeight(&ctx);
  whole.UpdateBias(loads_ref);

  std::vector<Matrix<float>> y(ranks), dx(ranks);
  std::vector<std::map<std::string, Matrix<float>>> values(ranks), grads(ranks);
  RunRanks(ranks, [&](comm::Communicator& ep) -> absl::Status {
    const int r = ep.rank();
    Moe<float> moe("m.", kHidden, TestConfig(), r, ranks);
    InitParams(moe.Params(), 0.5, 1);  // by name: the weights of `whole`
    Moe<float>::Context c;
    ASSIGN_OR_RETURN(const ExpertInput in,
                     DispatchToExperts(ep, moe.ForwardDispatch(x.middleRows(r * kTokens, kTokens),
                                                               {kTokens}, &c)));
    ASSIGN_OR_RETURN(Matrix<float> out,
                     ReturnFromExperts(ep, moe.ForwardExperts(in.rows, in.recv_counts, &c),
                                       c.recv_counts, c.loads));
    y[r] = moe.ForwardCombine(std::move(out), &c);
    const Matrix<float> d_rows = moe.BackwardCombine(dy.middleRows(r * kTokens, kTokens), &c);
    ASSIGN_OR_RETURN(const Matrix<float> d_in, SendToExperts(ep, d_rows, c.loads, c.recv_counts));
    ASSIGN_OR_RETURN(Matrix<float> dx_rows,
                     ReturnFromExperts(ep, moe.BackwardExperts(d_in, &c), c.recv_counts, c.loads));
    dx[r] = moe.BackwardDispatch(dx_rows, &c);
    ASSIGN_OR_RETURN(const std::vector<int64_t> loads, SumOverGroup(ep, c.loads));
    moe.BackwardWeight(&c);
    moe.UpdateBias(loads);
    // Gate and shared expert: every rank's copy; the routed experts stay local.
    std::vector<Param<float>*> replicated = moe.Params();
    replicated.resize(replicated.size() - moe.ExpertParams().size());
    RETURN_IF_ERROR(AllReduceGradients(ep, replicated));
    EXPECT_EQ(moe.num_local_experts(), 8 / ranks);
    for (Param<float>* p : moe.Params()) {
      values[r][p->name] = p->value;
      grads[r][p->name] = p->grad;
    }
    return absl::OkStatus();
  });
  for (int r = 0; r < ranks; ++r) {
    EXPECT_TRUE(y[r].isApprox(y_ref.middleRows(r * kTokens, kTokens), kTolerance)) << r;
    EXPECT_TRUE(dx[r].isApprox(dx_ref.middleRows(r * kTokens, kTokens), kTolerance)) << r;
  }
  for (Param<float>* p : whole.Params()) {
    int holders = 0;
    for (int r = 0; r < ranks; ++r) {
      if (values[r].count(p->name) == 0) continue;
      ++holders;
      // Integer loads: the bias update is the same arithmetic on every rank and on one rank.
      EXPECT_EQ(values[r][p->name], p->value) << p->name << " on rank " << r;
      if (p->trainable()) {
        EXPECT_TRUE(grads[r][p->name].isApprox(p->grad, kTolerance)) << p->name << " rank " << r;
      }
    }
    const bool routed = p->name.rfind("m.experts.", 0) == 0;
    EXPECT_EQ(holders, routed ? 1 : ranks) << p->name;
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, MoeExpertParallelTest, ::testing::Values(2, 4));

}  // namespace
}  // namespace model
