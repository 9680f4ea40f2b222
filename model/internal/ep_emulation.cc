#include "model/internal/ep_emulation.h"

#include "model/moe.h"

namespace model::testing {

namespace {

// The rows of every matrix in `parts`, stacked in order.
Matrix<double> Stack(const std::vector<Matrix<double>>& parts, int64_t width) {
  int64_t total = 0;
  for (const Matrix<double>& p : parts) total += p.rows();
  Matrix<double> out(total, width);
  int64_t at = 0;
  for (const Matrix<double>& p : parts) {
    out.middleRows(at, p.rows()) = p;
    at += p.rows();
  }
  return out;
}

}  // namespace

// Dispatch direction: rank s holds rows in expert order with expert_counts[s]; rank d receives,
// source-major, the rows for its experts, and sets recv_counts[d][s * L + l].
EpRows EmulateDispatch(const EpRows& send, const EpCounts& expert_counts, int ranks,
                       EpCounts* recv_counts) {
  const int64_t local = static_cast<int64_t>(expert_counts[0].size()) / ranks;
  EpRows recv(ranks);
  recv_counts->assign(ranks, {});
  for (int d = 0; d < ranks; ++d) {
    std::vector<Matrix<double>> parts;
    for (int s = 0; s < ranks; ++s) {
      const std::vector<int64_t> per_rank = RowsPerRank(expert_counts[s], ranks);
      int64_t begin = 0;
      for (int p = 0; p < d; ++p) begin += per_rank[p];
      parts.push_back(send[s].middleRows(begin, per_rank[d]));
      for (int64_t l = 0; l < local; ++l) {
        (*recv_counts)[d].push_back(expert_counts[s][d * local + l]);
      }
    }
    recv[d] = Stack(parts, send[0].cols());
  }
  return recv;
}

// Combine direction: rank d returns to each source s the rows it received from s; rank s gets
// them back in its expert order.
EpRows EmulateReturn(const EpRows& send, const EpCounts& recv_counts, int ranks) {
  const int64_t local = static_cast<int64_t>(recv_counts[0].size()) / ranks;
  EpRows back(ranks);
  for (int s = 0; s < ranks; ++s) {
    std::vector<Matrix<double>> parts;
    for (int d = 0; d < ranks; ++d) {
      int64_t begin = 0;
      int64_t count = 0;
      for (int64_t i = 0; i < ranks * local; ++i) {
        if (i < s * local) begin += recv_counts[d][i];
        if (i / local == s) count += recv_counts[d][i];
      }
      parts.push_back(send[d].middleRows(begin, count));
    }
    back[s] = Stack(parts, send[0].cols());
  }
  return back;
}

}  // namespace model::testing
