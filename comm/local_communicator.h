// The local backend: N ranks as threads of one process, for tests and for single-process runs of
// the binaries. Data moves with one memcpy from the sender's buffer into the receiver's; host
// memory only. A rank whose communicator is destroyed counts as gone: peers waiting on it get
// UNAVAILABLE.
#ifndef COMM_LOCAL_COMMUNICATOR_H_
#define COMM_LOCAL_COMMUNICATOR_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "comm/communicator.h"

namespace comm {

// Creates a group of `size` ranks; element r is rank r's communicator, to be used by one thread.
// The communicators are independent objects and may be destroyed in any order.
// Preconditions: size >= 1, ValidateCommOptions(options) is OK.
std::vector<std::unique_ptr<Communicator>> CreateLocalGroup(int size, const CommOptions& options);
// The same with CommOptionsFromFlags(); a bad flag is a DSMOE_CHECK failure here, so binaries
// should read the flags themselves and pass the options.
std::vector<std::unique_ptr<Communicator>> CreateLocalGroup(int size);

// Runs `body` for each of `size` ranks, each on its own thread with its own communicator, and
// returns the ranks' statuses (element r for rank r) once all have returned. Each communicator is
// destroyed as soon as its body returns. Bad options: every element is their INVALID_ARGUMENT and
// `body` does not run. Precondition: size >= 1.
std::vector<absl::Status> RunLocalRanks(int size, const CommOptions& options,
                                        const std::function<absl::Status(Communicator&)>& body);
// The same with CommOptionsFromFlags() (a bad flag is every rank's error).
std::vector<absl::Status> RunLocalRanks(int size,
                                        const std::function<absl::Status(Communicator&)>& body);

}  // namespace comm

#endif  // COMM_LOCAL_COMMUNICATOR_H_
