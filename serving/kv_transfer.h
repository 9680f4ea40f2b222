// Moving a request's KV pages from a prefill instance to a decode instance (serving/README.md
// "Roles"): the wire protocol over HTTP, the prefill side's outbox, the decode side's fetch, an MPI
// channel for the pages when both instances are ranks of one mpirun job, and the transfer states
// /metrics shows.
//
// One transfer, driven by the decode instance (the router sent it the request, naming the prefill
// instance):
//   bootstrapping  the decode engine allocates the prompt's blocks (KvImport::WaitBlocks), whose
//                  ids go to the prefill instance as the pages' destination names
//   waiting        POST {prefill}/internal/prefill: the prefill engine runs the prompt and samples
//                  the first token; the answer gives the token, the pages' shape and checksum, and
//                  the pages wait in the prefill instance's outbox
//   transferring   the pages move: GET {prefill}/internal/kv/{id} (HTTP bulk transfer, a binary
//                  body of float32 in host order), or over MPI: the decode rank posts the receive,
//                  then POST {prefill}/internal/kv_send/{id}?rank=R makes the prefill rank send
//   done / failed  the decode engine placed the pages in its blocks and found the checksum equal,
//                  or something failed or ran past the deadline (the blocks are then freed)
#ifndef SERVING_KV_TRANSFER_H_
#define SERVING_KV_TRANSFER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "comm/communicator.h"
#include "nlohmann/json.hpp"
#include "serving/kv_handoff.h"
#include "serving/metrics.h"
#include "serving/sampler.h"

namespace serving {

// The HTTP headers the router adds to a generation request it sends to a decode instance.
inline constexpr char kPrefillHeader[] = "X-Dsmoe-Prefill";           // the prefill instance's URL
inline constexpr char kPrefillRankHeader[] = "X-Dsmoe-Prefill-Rank";  // its KV rank (MPI form)
// On a 503 from a decode instance: the instance that failed (the router stops choosing it).
inline constexpr char kFailedInstanceHeader[] = "X-Dsmoe-Failed-Instance";

// Sampling parameters that decide the first token, as JSON and back (INVALID_ARGUMENT for a
// malformed object).
nlohmann::json SamplingParamsToJson(const SamplingParams& params);
absl::StatusOr<SamplingParams> SamplingParamsFromJson(const nlohmann::json& j);
nlohmann::json SampledTokenToJson(const SampledToken& token);
absl::StatusOr<SampledToken> SampledTokenFromJson(const nlohmann::json& j);

enum class TransferState { kBootstrapping, kWaiting, kTransferring, kDone, kFailed };
const char* TransferStateName(TransferState state);

// Counts of transfers by state, bytes and times, for /metrics. Thread-safe.
class TransferStats {
 public:
  TransferStats();
  // A transfer moved from `from` (kDone for a new one) to `to`.
  void Move(TransferState from, TransferState to);
  // Decode side, a transfer done (its pages over MPI or HTTP).
  void Received(int64_t bytes, absl::Duration took, bool mpi);
  void Sent(int64_t bytes);  // prefill side, pages sent
  void set_outbox(int64_t requests);
  std::string Render() const;

 private:
  mutable absl::Mutex mu_;
  std::map<TransferState, int64_t> now_ ABSL_GUARDED_BY(mu_);  // in progress, by state
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0, failed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t received_bytes_ ABSL_GUARDED_BY(mu_) = 0, sent_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t over_mpi_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t outbox_ ABSL_GUARDED_BY(mu_) = 0;
  Histogram seconds_;
};

// The prefill side's exported pages, held until the decode side fetches them or `hold` passes.
// Thread-safe.
class KvOutbox {
 public:
  explicit KvOutbox(absl::Duration hold) : hold_(hold) {}
  void Put(const std::string& id, std::shared_ptr<const KvPages> pages);
  // The pages of `id`, removed from the outbox; NOT_FOUND if unknown or expired.
  absl::StatusOr<std::shared_ptr<const KvPages>> Take(const std::string& id);
  int64_t size() const;

 private:
  void ExpireLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration hold_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::pair<std::shared_ptr<const KvPages>, absl::Time>> pages_
      ABSL_GUARDED_BY(mu_);
};

// KV pages over comm between the leaders of the instances of one MPI job (the communicator holds
// exactly those ranks). Calls are serialized by a mutex (a communicator is used by one thread at
// a time); a decode rank has one receive in flight at a time, and a prefill rank sends only what a
// decode rank asked for after posting its receive, so no two ranks wait on each other. The
// communicator's timeout bounds a transfer; after a failure the channel is aborted and transfers
// fall back to HTTP.
class KvChannel {
 public:
  explicit KvChannel(std::unique_ptr<comm::Communicator> comm);
  int rank() const { return comm_->rank(); }
  // Decode side: posts the receive of pages->data (sized by the caller) from `from`, runs
  // `ask_send` (which makes the sender send), then waits (the communicator's timeout).
  absl::Status Receive(int from, KvPages* pages, const std::function<absl::Status()>& ask_send);
  // False once a call failed (the communicator is aborted): transfers then go over HTTP.
  bool usable();
  // Prefill side: sends `pages` to `to`.
  absl::Status Send(int to, const KvPages& pages);

 private:
  absl::Mutex mu_;
  std::unique_ptr<comm::Communicator> comm_ ABSL_GUARDED_BY(mu_);
};

// Where a decode instance gets a request's KV from.
struct PrefillPeer {
  std::string url;   // http://host:port
  int kv_rank = -1;  // with a KvChannel: the prefill leader's rank in it; else -1 (HTTP)
};

struct FetchOptions {
  absl::Duration timeout = absl::Seconds(30);  // the whole transfer, bootstrapping to placed
  KvChannel* channel = nullptr;                // pages over MPI when the peer has a kv_rank
  TransferStats* stats = nullptr;
};

// Decode side: runs one transfer for a request submitted with `import` (prompt and params as
// submitted), through the states above. On failure the import is failed (the engine frees the
// blocks) and the error is UNAVAILABLE naming the prefill instance.
absl::Status FetchKv(const PrefillPeer& peer, const std::string& transfer_id,
                     const std::vector<int32_t>& prompt, const SamplingParams& params,
                     KvImport* import, const FetchOptions& options);

}  // namespace serving

#endif  // SERVING_KV_TRANSFER_H_
