// Expert parallelism over a comm::Communicator (the EP group): the all-to-alls that move token rows
// between the MoE phases of model/moe.h, and the EP group's reductions (expert loads before the
// gate's bias update, gradients of the weights every rank of the group holds a copy of).
//
// Per micro-batch and MoE layer (L = experts / ep.size() local experts per rank):
//   forward:  ForwardDispatch -> DispatchToExperts -> ForwardExperts -> ReturnFromExperts ->
//             ForwardCombine
//   backward: BackwardCombine -> SendToExperts -> BackwardExperts -> ReturnFromExperts ->
//             BackwardDispatch
// DispatchToExperts exchanges the per-expert counts first (one small AllToAll of i64), then the
// rows; the backward reuses the forward's counts (Moe::Context::loads and recv_counts).
//
// Every function is a collective: each rank of `ep` calls it with its own data, in the same order.
// f32 only: comm has no f64, so expert-parallel runs use the float instantiation of the layers.
// Errors are the communicator's (DEADLINE_EXCEEDED, UNAVAILABLE, FAILED_PRECONDITION after an
// abort); argument mismatches are programming errors and DSMOE_CHECK.
#ifndef MODEL_EXPERT_EXCHANGE_H_
#define MODEL_EXPERT_EXCHANGE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "model/matrix.h"
#include "model/moe.h"

namespace model {

// What a rank's experts receive: rows from every source rank, source-major, and their counts.
struct ExpertInput {
  Matrix<float> rows;                // [received rows, hidden]
  std::vector<int64_t> recv_counts;  // [ep.size() * L]: recv_counts[s * L + l]
};

// Sends each rank's share of `send` (ForwardDispatch's rows, expert order; expert_counts over all
// experts, a multiple of ep.size() of them) to the rank owning those experts, after exchanging the
// counts. Returns the rows for this rank's experts, ready for ForwardExperts.
absl::StatusOr<ExpertInput> DispatchToExperts(comm::Communicator& ep,
                                              const ExpertRows<float>& send);

// The same move for gradient rows (BackwardCombine's output, expert order), with the counts the
// forward exchanged: expert_counts [experts] of this rank's rows, recv_counts [ep.size() * L] of
// what its experts received. Returns rows in ForwardExperts' layout, for BackwardExperts.
absl::StatusOr<Matrix<float>> SendToExperts(comm::Communicator& ep, const Matrix<float>& rows,
                                            const std::vector<int64_t>& expert_counts,
                                            const std::vector<int64_t>& recv_counts);

// The way back: rows in ForwardExperts' layout (recv_counts) return to their source ranks. Returns
// this rank's rows in its own expert order (expert_counts), for ForwardCombine or
// BackwardDispatch.
absl::StatusOr<Matrix<float>> ReturnFromExperts(comm::Communicator& ep, const Matrix<float>& rows,
                                                const std::vector<int64_t>& recv_counts,
                                                const std::vector<int64_t>& expert_counts);

// Non-blocking forms of the moves above, for a caller that computes while they travel (the
// overlapped forward+backward). Each starts the exchange on ep.StartAllToAll and returns its
// request; the output holds the result once the request's Wait returns OK, and the inputs must
// stay alive and unchanged until then.
//   StartCountExchange: recv_counts [ep.size() * L] from expert_counts [experts], as
//     DispatchToExperts' first exchange.
//   StartRowExchange: `rows`, grouped by the ranks that own the experts of `from_counts`, go to
//     those ranks, and `out` is sized for and receives the rows that `to_counts` says come back:
//     Dispatch's rows (from expert_counts to recv_counts), SendToExperts (the same), and
//     ReturnFromExperts (from recv_counts to expert_counts).
absl::StatusOr<std::unique_ptr<comm::Request>> StartCountExchange(
    comm::Communicator& ep, const std::vector<int64_t>& expert_counts,
    std::vector<int64_t>* recv_counts);
absl::StatusOr<std::unique_ptr<comm::Request>> StartRowExchange(
    comm::Communicator& ep, const Matrix<float>& rows, const std::vector<int64_t>& from_counts,
    const std::vector<int64_t>& to_counts, Matrix<float>* out);

// The element-wise sum of every rank's `loads` (tokens per expert, same length on every rank), so
// that each rank's replicated gate takes the same bias update.
absl::StatusOr<std::vector<int64_t>> SumOverGroup(comm::Communicator& ep,
                                                  const std::vector<int64_t>& loads);

// Replaces each trainable parameter's grad by its sum over the group, in place. Pass the weights
// every rank holds a copy of (see ModelStage::ReplicatedParams); routed experts' gradients stay
// local. The parameters must have the same shapes, in the same order, on every rank.
absl::Status AllReduceGradients(comm::Communicator& ep, const std::vector<Param<float>*>& params);

}  // namespace model

#endif  // MODEL_EXPERT_EXCHANGE_H_
