// The continuous-batching engine: requests enter a bounded waiting queue; every step the scheduler
// spends a token budget on the running sequences first (one decode token each, or the next chunk
// of an unfinished prefill) and then admits waiting sequences with what is left (chunked prefill:
// a long prompt takes several steps and never holds back the running decodes), and one
// IncrementalModel call runs the prefill and decode tokens of the step together. KV blocks come
// from the paged cache; when it is full the most recently admitted running sequence is preempted:
// its blocks are freed and it goes back to the front of the queue, to be recomputed from its prompt
// and the tokens it had produced (its sampling state is kept, so its output does not change).
//
// Outputs reach the caller through a RequestStream per request: text deltas (incremental
// detokenization that never splits a UTF-8 character and holds back text that may begin a stop
// string), the token ids, their log-probabilities, and a final event with the finish reason.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(&loaded, options));
//   engine->Start();
//   ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, engine->Submit(prompt_ids, params));
//   while (std::optional<RequestOutput> out = s->Next()) { ... if (out->finished) break; }
//
// Prefill/decode disaggregation (serving/kv_handoff.h) goes through SubmitOptions: a prefill
// request stops after its first token and hands out its prompt's KV; a decode request gets its
// prompt's KV and first token from a KvImport into blocks the engine allocated for it.
//
// Thread-safe: Submit, Cancel, Stats and Metrics may be called from any thread; one background
// thread (Start) or the caller (Step, for tests, when not started) runs the steps.
#ifndef SERVING_ENGINE_H_
#define SERVING_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/thread_pool.h"
#include "core/trace.h"
#include "serving/expert_parallel.h"
#include "serving/incremental_model.h"
#include "serving/kv_cache.h"
#include "serving/kv_handoff.h"
#include "serving/metrics.h"
#include "serving/model_dir.h"
#include "serving/sampler.h"

namespace serving {

struct EngineOptions {
  int64_t kv_cache_mb = 64;         // memory of the paged KV cache
  int64_t kv_cache_blocks = 0;      // if > 0, the cache's blocks (overrides kv_cache_mb)
  int64_t block_size = 16;          // token slots per KV block
  int64_t max_batch_tokens = 256;   // token budget of one step (prefill + decode)
  int64_t max_running = 64;         // sequences in a step at most
  int64_t max_waiting = 256;        // queued requests at most; more are RESOURCE_EXHAUSTED
  int threads = 0;                  // compute threads; 0: the hardware's
  std::string trace_path;           // with trace_steps: where the Chrome trace is written
  int64_t trace_steps = 0;          // steps (with work) to trace; 0: none
  int64_t debug_step_delay_ms = 0;  // tests: sleep this long in every step that runs the model
  // Decode role: the longest a request may wait for its prompt's KV (SubmitOptions::import)
  // before it fails and its blocks are freed.
  absl::Duration kv_import_timeout = absl::Seconds(30);
  EpOptions ep;  // expert parallelism and online EPLB (ep 1 and no redundant experts: off)

  // INVALID_ARGUMENT naming the flag for a value out of range.
  absl::Status Validate() const;
};

enum class FinishReason { kNone, kStop, kLength, kAbort };
const char* FinishReasonName(FinishReason reason);  // "stop", "length", "abort"

// One event of a request's stream.
struct RequestOutput {
  std::string text;                    // new text (may be empty)
  std::vector<int32_t> token_ids;      // new tokens
  std::vector<SampledToken> logprobs;  // per new token, when the request asked for logprobs
  FinishReason finish = FinishReason::kNone;
  // With finish kAbort: why, when the engine failed (a step's error, e.g. an expert-parallel peer
  // that died); OK when the request was cancelled or the engine stopped.
  absl::Status error;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // so far
  absl::Time time;                // when the engine produced it
  // Prefill role (SubmitOptions::export_kv): on the final event, the prompt's KV slots.
  std::shared_ptr<const KvPages> kv;
};

// How a request takes part in prefill/decode disaggregation (serving/kv_handoff.h).
struct SubmitOptions {
  // Prefill role: produce the first token only and attach the prompt's KV to the final event
  // (max_tokens is taken as 1). The blocks are freed once copied out.
  bool export_kv = false;
  // Decode role: the prompt's KV and first token come from `import` instead of a local prefill.
  // The engine allocates the prompt's blocks, hands their ids to the import, and fails the
  // request (freeing them) if the pages have not arrived within kv_import_timeout. The prompt and
  // params must be the prefill side's (params.seed set: both sides draw from the same generator).
  std::shared_ptr<KvImport> import;
};

// A request's outputs, in order. Thread-safe.
class RequestStream {
 public:
  // The next event, waiting up to `timeout`; nullopt on timeout. After the final event (finish !=
  // kNone) returns nullopt at once.
  std::optional<RequestOutput> Next(absl::Duration timeout = absl::InfiniteDuration());
  // Asks the engine to stop the request and free its KV blocks (a client went away). Its stream
  // then ends with FinishReason::kAbort.
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  friend class Engine;
  void Push(RequestOutput out);

  absl::Mutex mu_;
  std::deque<RequestOutput> queue_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;  // the final event was popped
  std::atomic<bool> cancelled_{false};
};

struct EngineStats {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int64_t steps = 0;
  int64_t preemptions = 0;
  int64_t prompt_tokens = 0;  // counted when a request is admitted the first time
  int64_t generation_tokens = 0;
  int64_t importing = 0;                    // requests waiting for their prompt's KV (decode role)
  std::map<std::string, int64_t> finished;  // by finish reason
};

class Engine {
 public:
  // An engine over `loaded` (which must outlive it). INVALID_ARGUMENT for bad options.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(LoadedModel* loaded,
                                                        const EngineOptions& options);
  ~Engine();  // stops the step thread; open streams end with kAbort

  // Starts the background step thread.
  void Start();
  // Runs one step on the calling thread (only when not started). Returns false if there was
  // nothing to do.
  absl::StatusOr<bool> Step();

  // Queues a request. INVALID_ARGUMENT for an empty prompt, ids outside the vocabulary, bad
  // params, or a prompt that leaves no room in the context (max_seq_len, named in the message);
  // RESOURCE_EXHAUSTED when the waiting queue is full. max_tokens is lowered to what the context
  // leaves; a sequence that reaches max_seq_len finishes with kLength.
  absl::StatusOr<std::shared_ptr<RequestStream>> Submit(std::vector<int32_t> prompt,
                                                        SamplingParams params,
                                                        SubmitOptions submit = {});

  // OK, or the error of a step that failed (a model or communication error): the step thread
  // then aborted every request and stopped, and Submit answers UNAVAILABLE.
  absl::Status Health() const;
  EngineStats Stats() const;
  // The Prometheus text of the engine's metrics.
  std::string Metrics() const;
  const model::ModelConfig& config() const { return model_.config(); }
  const tokenizer::Tokenizer& tokenizer() const { return *loaded_->tokenizer; }
  const IncrementalModel& model() const { return model_; }
  // The expert-parallel executor, or null without --ep / --num_redundant_experts.
  ExpertParallel* expert_parallel() { return ep_.get(); }
  int64_t max_seq_len() const { return model_.config().max_seq_len(); }

 private:
  struct Sequence;
  Engine(LoadedModel* loaded, const EngineOptions& options);
  void Loop();
  // After a step failed: records `status`, aborts every request (step thread).
  void Fail(const absl::Status& status);
  // Moves submitted requests into waiting and drops cancelled ones (step thread).
  void Intake();
  // Decode role: allocates blocks for importing sequences, places arrived pages and moves those
  // sequences to running, fails late ones (step thread). Returns whether anything changed.
  bool PollImports();
  // Copies the prompt's slots of seq out of the cache (prefill role).
  std::shared_ptr<const KvPages> ExportKv(const Sequence& seq) const;
  // Scatters pages into seq's blocks and checks them against `checksum` (decode role).
  absl::Status PlaceKv(Sequence* seq, const KvPages& pages, uint64_t checksum);
  // Ends `seq`; an abort carries `error` (see RequestOutput::error).
  void Finish(Sequence* seq, FinishReason reason, const absl::Status& error = absl::OkStatus());
  void Preempt(Sequence* seq);
  // Appends a sampled token to seq and sends its output; finishes seq if a stop condition holds.
  void Emit(Sequence* seq, const SampledToken& token);

  LoadedModel* loaded_;
  EngineOptions options_;
  core::ThreadPool pool_;
  IncrementalModel model_;
  KvCache cache_;
  std::unique_ptr<ExpertParallel> ep_;
  int32_t vocab_limit_;  // ids below both the model's and the tokenizer's vocabulary
  std::optional<int32_t> eos_;

  // Step-thread state.
  std::vector<std::unique_ptr<Sequence>> running_;  // admission order
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> importing_;  // waiting for their prompt's KV
  core::TraceRecorder trace_;
  int64_t traced_steps_ = 0;
  bool trace_written_ = false;

  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<Sequence>> submitted_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  EngineStats stats_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t import_events_ ABSL_GUARDED_BY(mu_) = 0;  // KvImport completions and failures
  std::thread thread_;
  bool started_ = false;

  Histogram ttft_, itl_, e2e_, prompt_len_, output_len_;
};

}  // namespace serving

#endif  // SERVING_ENGINE_H_
