// Handing a prompt's KV cache from a prefill engine to a decode engine (prefill/decode
// disaggregation, serving/README.md "Roles").
//
// The prefill side exports the prompt's slots as KvPages with the first token it sampled; the
// decode side submits the request with a KvImport, the engine allocates (and so names) the blocks
// that will hold the prompt, the transfer fills the import with the pages it received, and the
// engine's step thread scatters them into those blocks, checks them against the sender's checksum
// and continues the sequence from its first token. How the bytes travel is the transfer's business
// (serving/kv_transfer.h); this file knows nothing of HTTP or MPI.
#ifndef SERVING_KV_HANDOFF_H_
#define SERVING_KV_HANDOFF_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "serving/sampler.h"

namespace serving {

// FNV-1a (64 bit) of `bytes` bytes, continuing from `hash`.
uint64_t Fnv1a(const void* data, size_t bytes, uint64_t hash = 14695981039346656037ull);

// The KV slots of a prompt's positions, every layer: [layers, tokens, width] floats (for MLA the
// normalised latent and the rotated rope key of each position, kv_cache.h).
struct KvPages {
  int64_t layers = 0;
  int64_t tokens = 0;
  int64_t width = 0;
  std::vector<float> data;  // [layers, tokens, width]

  int64_t bytes() const { return static_cast<int64_t>(data.size() * sizeof(float)); }
  uint64_t Checksum() const { return Fnv1a(data.data(), data.size() * sizeof(float)); }
};

// One request's import on the decode side, shared by the engine's step thread and the thread that
// runs the transfer. Thread-safe.
class KvImport {
 public:
  // Transfer side: the decode engine's block ids that will hold the prompt (allocated by the step
  // thread), waiting up to `timeout`. DEADLINE_EXCEEDED when none came in time (the cache is
  // full), or the failure that ended the import first.
  absl::StatusOr<std::vector<int32_t>> WaitBlocks(absl::Duration timeout);
  // Transfer side: the pages arrived, with the first token the prefill side sampled and the
  // checksum it computed of what it sent. The engine scatters them into the blocks.
  void Complete(SampledToken first, KvPages pages, uint64_t sent_checksum);
  // Either side: ends the import with `status` (not OK). The engine frees the blocks and ends the
  // request with FinishReason::kAbort. Later calls keep the first failure.
  void Fail(absl::Status status);
  // Transfer side: OK once the engine placed the pages in its blocks and they matched the sender's
  // checksum; else the failure. DEADLINE_EXCEEDED after `timeout`.
  absl::Status WaitPlaced(absl::Duration timeout);

  // Engine side (step thread).
  void SetBlocks(std::vector<int32_t> blocks);
  bool has_blocks() const;
  // The import's outcome once known: the pages (moved out, once) or the failure; nullopt while
  // the transfer runs.
  struct Arrival {
    SampledToken first;
    KvPages pages;
    uint64_t checksum = 0;
  };
  std::optional<absl::StatusOr<Arrival>> Take();
  void Placed(absl::Status status);
  // Called (under the import's lock) on Complete and Fail, so that the engine wakes its step
  // thread; cleared (empty) when the engine lets go of the import.
  void set_notify(std::function<void()> notify);

 private:
  mutable absl::Mutex mu_;
  std::optional<std::vector<int32_t>> blocks_ ABSL_GUARDED_BY(mu_);
  std::optional<Arrival> arrival_ ABSL_GUARDED_BY(mu_);
  bool taken_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> placed_ ABSL_GUARDED_BY(mu_);
  std::function<void()> notify_ ABSL_GUARDED_BY(mu_);
};

}  // namespace serving

#endif  // SERVING_KV_HANDOFF_H_
