// Test helpers for expert parallelism without a communicator: the ranks of an EP group run in
// turn in one thread, and these functions move rows between their buffers exactly as the
// dispatch and combine all-to-alls (comm's AllToAll) would. See model/moe.h for the layouts.
#ifndef MODEL_INTERNAL_EP_EMULATION_H_
#define MODEL_INTERNAL_EP_EMULATION_H_

#include <cstdint>
#include <vector>

#include "model/matrix.h"

namespace model::testing {

using EpRows = std::vector<Matrix<double>>;          // per rank
using EpCounts = std::vector<std::vector<int64_t>>;  // per rank

// Dispatch direction: rank s holds `send[s]` in expert order with expert_counts[s] ([experts]);
// returns what each rank d receives (source-major rows for its experts) and sets
// recv_counts[d][s * L + l].
EpRows EmulateDispatch(const EpRows& send, const EpCounts& expert_counts, int ranks,
                       EpCounts* recv_counts);

// Combine direction: rank d returns to each source s the rows of send[d] that came from s (per
// recv_counts[d]); returns what each rank gets back, in its own expert order.
EpRows EmulateReturn(const EpRows& send, const EpCounts& recv_counts, int ranks);

}  // namespace model::testing

#endif  // MODEL_INTERNAL_EP_EMULATION_H_
