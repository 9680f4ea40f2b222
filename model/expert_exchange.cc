#include "model/expert_exchange.h"

#include "absl/types/span.h"
#include "comm/buffer.h"
#include "core/check.h"
#include "core/status_macros.h"

namespace model {
namespace {

std::vector<size_t> Scaled(const std::vector<int64_t>& rows, int64_t width) {
  std::vector<size_t> elements(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) elements[i] = static_cast<size_t>(rows[i] * width);
  return elements;
}

int64_t Sum(const std::vector<int64_t>& values) {
  int64_t total = 0;
  for (int64_t v : values) total += v;
  return total;
}

// One AllToAll of whole rows: send_rows[p] rows of `rows` (in order) go to peer p, recv_rows[s]
// rows come from source s. Matrix is row-major, so each peer's rows are one contiguous block.
absl::StatusOr<Matrix<float>> ExchangeRows(comm::Communicator& ep, const Matrix<float>& rows,
                                           const std::vector<int64_t>& send_rows,
                                           const std::vector<int64_t>& recv_rows) {
  DSMOE_CHECK(Sum(send_rows) == rows.rows(), "expert exchange: ", rows.rows(),
              " rows, counts sum to ", Sum(send_rows));
  Matrix<float> out(Sum(recv_rows), rows.cols());
  RETURN_IF_ERROR(ep.AllToAll(
      comm::ConstHostBuffer(absl::Span<const float>(rows.data(), rows.size())),
      Scaled(send_rows, rows.cols()), comm::HostBuffer(absl::Span<float>(out.data(), out.size())),
      Scaled(recv_rows, rows.cols())));
  return out;
}

}  // namespace

absl::StatusOr<ExpertInput> DispatchToExperts(comm::Communicator& ep,
                                              const ExpertRows<float>& send) {
  const int ranks = ep.size();
  // RowsPerRank CHECKs that the ranks divide the experts.
  const std::vector<int64_t> send_rows = RowsPerRank(send.expert_counts, ranks);
  const size_t local = send.expert_counts.size() / ranks;
  ExpertInput in;
  in.recv_counts.resize(send.expert_counts.size());
  RETURN_IF_ERROR(ep.AllToAll(comm::ConstHostBuffer(absl::Span<const int64_t>(send.expert_counts)),
                              std::vector<size_t>(ranks, local),
                              comm::HostBuffer(absl::Span<int64_t>(in.recv_counts)),
                              std::vector<size_t>(ranks, local)));
  ASSIGN_OR_RETURN(in.rows,
                   ExchangeRows(ep, send.rows, send_rows, RowsPerRank(in.recv_counts, ranks)));
  return in;
}

absl::StatusOr<Matrix<float>> SendToExperts(comm::Communicator& ep, const Matrix<float>& rows,
                                            const std::vector<int64_t>& expert_counts,
                                            const std::vector<int64_t>& recv_counts) {
  return ExchangeRows(ep, rows, RowsPerRank(expert_counts, ep.size()),
                      RowsPerRank(recv_counts, ep.size()));
}

absl::StatusOr<Matrix<float>> ReturnFromExperts(comm::Communicator& ep, const Matrix<float>& rows,
                                                const std::vector<int64_t>& recv_counts,
                                                const std::vector<int64_t>& expert_counts) {
  return ExchangeRows(ep, rows, RowsPerRank(recv_counts, ep.size()),
                      RowsPerRank(expert_counts, ep.size()));
}

absl::StatusOr<std::unique_ptr<comm::Request>> StartCountExchange(
    comm::Communicator& ep, const std::vector<int64_t>& expert_counts,
    std::vector<int64_t>* recv_counts) {
  const int ranks = ep.size();
  DSMOE_CHECK(expert_counts.size() % ranks == 0, "expert exchange: ", expert_counts.size(),
              " experts over ", ranks, " ranks");
  const size_t local = expert_counts.size() / ranks;
  recv_counts->assign(expert_counts.size(), 0);
  return ep.StartAllToAll(comm::ConstHostBuffer(absl::Span<const int64_t>(expert_counts)),
                          std::vector<size_t>(ranks, local),
                          comm::HostBuffer(absl::MakeSpan(*recv_counts)),
                          std::vector<size_t>(ranks, local));
}

absl::StatusOr<std::unique_ptr<comm::Request>> StartRowExchange(
    comm::Communicator& ep, const Matrix<float>& rows, const std::vector<int64_t>& from_counts,
    const std::vector<int64_t>& to_counts, Matrix<float>* out) {
  const std::vector<int64_t> send_rows = RowsPerRank(from_counts, ep.size());
  const std::vector<int64_t> recv_rows = RowsPerRank(to_counts, ep.size());
  DSMOE_CHECK(Sum(send_rows) == rows.rows(), "expert exchange: ", rows.rows(),
              " rows, counts sum to ", Sum(send_rows));
  out->resize(Sum(recv_rows), rows.cols());
  return ep.StartAllToAll(comm::ConstHostBuffer(absl::Span<const float>(rows.data(), rows.size())),
                          Scaled(send_rows, rows.cols()),
                          comm::HostBuffer(absl::Span<float>(out->data(), out->size())),
                          Scaled(recv_rows, rows.cols()));
}

absl::StatusOr<std::vector<int64_t>> SumOverGroup(comm::Communicator& ep,
                                                  const std::vector<int64_t>& loads) {
  std::vector<int64_t> sum(loads.size());
  RETURN_IF_ERROR(ep.AllReduce(comm::ConstHostBuffer(absl::Span<const int64_t>(loads)),
                               comm::HostBuffer(absl::Span<int64_t>(sum)), comm::ReduceOp::kSum));
  return sum;
}

absl::Status AllReduceGradients(comm::Communicator& ep, const std::vector<Param<float>*>& params) {
  for (Param<float>* p : params) {
    if (!p->trainable()) continue;
    const comm::Buffer grad = comm::HostBuffer(absl::Span<float>(p->grad.data(), p->grad.size()));
    RETURN_IF_ERROR(ep.AllReduce(grad, grad, comm::ReduceOp::kSum));
  }
  return absl::OkStatus();
}

}  // namespace model
