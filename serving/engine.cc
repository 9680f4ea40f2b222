#include "serving/engine.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"
#include "core/status_macros.h"

namespace serving {

struct Engine::Sequence {
  int64_t id = 0;
  std::vector<int32_t> tokens;  // prompt + output so far
  int64_t prompt_len = 0;
  SamplingParams params;
  model::Rng rng{0};
  int64_t computed = 0;        // leading tokens whose KV is in the cache
  std::vector<int32_t> table;  // KV block table
  std::shared_ptr<RequestStream> stream;
  std::unique_ptr<tokenizer::IncrementalDecoder> decoder;
  std::string text;  // output text so far (stop strings cut off)
  size_t sent = 0;   // bytes of text already streamed
  int64_t generated = 0;
  bool admitted_once = false;
  bool finished = false;
  absl::Time arrival;
  absl::Time last_token;
  bool export_kv = false;             // prefill role
  std::shared_ptr<const KvPages> kv;  // prefill role: the exported prompt KV
  std::shared_ptr<KvImport> import;   // decode role: where the prompt's KV comes from
};

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kNone:
      break;
  }
  return "";
}

absl::Status EngineOptions::Validate() const {
  const auto bad = [](const char* flag, int64_t v, const char* want) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", v, ": must be ", want));
  };
  if (kv_cache_mb < 1) return bad("kv_cache_mb", kv_cache_mb, ">= 1");
  if (kv_cache_blocks < 0) return bad("kv_cache_blocks", kv_cache_blocks, ">= 0");
  if (block_size < 1 || block_size > 1024) return bad("block_size", block_size, "in [1, 1024]");
  if (max_batch_tokens < 1) return bad("max_batch_tokens", max_batch_tokens, ">= 1");
  if (max_running < 1) return bad("max_running", max_running, ">= 1");
  if (max_waiting < 1) return bad("max_waiting", max_waiting, ">= 1");
  if (threads < 0 || threads > 1024) return bad("threads", threads, "in [0, 1024]");
  if (trace_steps < 0) return bad("trace_steps", trace_steps, ">= 0");
  if (trace_steps > 0 && trace_path.empty()) {
    return absl::InvalidArgumentError("--trace_steps needs --trace_path");
  }
  return ep.Validate();
}

std::optional<RequestOutput> RequestStream::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (done_) return std::nullopt;
  const auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !queue_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  if (out.finish != FinishReason::kNone) done_ = true;
  return out;
}

void RequestStream::Push(RequestOutput out) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(out));
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(LoadedModel* loaded,
                                                       const EngineOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<Engine> engine(new Engine(loaded, options));
  if (options.ep.ep > 1 || options.ep.num_redundant_experts > 0) {
    ASSIGN_OR_RETURN(engine->ep_, ExpertParallel::Create(engine->model_, options.ep));
  }
  const int64_t need = engine->cache_.BlocksFor(loaded->config.max_seq_len());
  if (engine->cache_.num_blocks() < need) {
    const int64_t block_bytes =
        engine->model_.num_layers() * options.block_size * engine->model_.cache_width() * 4;
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_cache_mb=", options.kv_cache_mb, " holds ", engine->cache_.num_blocks(),
                     " blocks; one sequence of max_seq_len ", loaded->config.max_seq_len(),
                     " needs ", need, " (", (need * block_bytes + (1 << 20) - 1) >> 20, " MB)"));
  }
  return engine;
}

Engine::Engine(LoadedModel* loaded, const EngineOptions& options)
    : loaded_(loaded),
      options_(options),
      pool_(options.threads > 0
                ? options.threads
                : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))),
      model_(*loaded->model, &pool_),
      cache_(model_.num_layers(),
             options.kv_cache_blocks > 0
                 ? options.kv_cache_blocks
                 : KvCache::BlocksForBytes(options.kv_cache_mb << 20, model_.num_layers(),
                                           options.block_size, model_.cache_width()),
             options.block_size, model_.cache_width()),
      vocab_limit_(std::min(loaded->config.vocab_size(), loaded->tokenizer->vocab_size())),
      eos_(loaded->tokenizer->eos_id()),
      ttft_(LatencyBuckets()),
      itl_(LatencyBuckets()),
      e2e_(LatencyBuckets()),
      prompt_len_({1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}),
      output_len_({1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}) {
  trace_.NameProcess(0, "engine");
  trace_.NameThread(0, 0, "steps");
  absl::MutexLock lock(&mu_);
  stats_.kv_blocks_total = cache_.num_blocks();
}

Engine::~Engine() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  for (auto& seq : running_) Finish(seq.get(), FinishReason::kAbort);
  for (auto& seq : waiting_) Finish(seq.get(), FinishReason::kAbort);
  for (auto& seq : importing_) Finish(seq.get(), FinishReason::kAbort);
  std::vector<std::shared_ptr<KvImport>> imports;
  {
    absl::MutexLock lock(&mu_);
    for (auto& seq : submitted_) {
      seq->stream->Push({.finish = FinishReason::kAbort});
      if (seq->import != nullptr) imports.push_back(seq->import);
    }
  }
  for (auto& import : imports) {
    import->set_notify(nullptr);
    import->Fail(absl::UnavailableError("the decode engine stopped"));
  }
  absl::MutexLock lock(&mu_);
  if (!trace_written_ && traced_steps_ > 0) (void)trace_.WriteFile(options_.trace_path);
}

void Engine::Start() {
  DSMOE_CHECK(!started_, "Engine::Start twice");
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void Engine::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (running_.empty() && waiting_.empty()) {
        const int64_t events = import_events_;
        const auto ready = [this, events]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stopping_ || !submitted_.empty() || import_events_ != events;
        };
        if (importing_.empty()) {
          mu_.Await(absl::Condition(&ready));
        } else {
          // Wakes now and then to fail imports that are late.
          mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(20));
        }
      }
      if (stopping_) return;
    }
    absl::StatusOr<bool> worked = Step();
    if (!worked.ok()) {
      Fail(worked.status());
      return;
    }
  }
}

void Engine::Fail(const absl::Status& status) {
  std::fprintf(stderr, "engine: a step failed, every request is aborted: %s\n",
               status.ToString().c_str());
  {
    absl::MutexLock lock(&mu_);
    failed_ = status;
    for (auto& seq : submitted_) waiting_.push_back(std::move(seq));
    submitted_.clear();
  }
  for (auto& seq : running_) Finish(seq.get(), FinishReason::kAbort, status);
  for (auto& seq : waiting_) Finish(seq.get(), FinishReason::kAbort, status);
  for (auto& seq : importing_) Finish(seq.get(), FinishReason::kAbort, status);
  running_.clear();
  waiting_.clear();
  importing_.clear();
  absl::MutexLock lock(&mu_);
  stats_.running = 0;
  stats_.waiting = 0;
  stats_.kv_blocks_used = cache_.num_used_blocks();
}

absl::Status Engine::Health() const {
  absl::MutexLock lock(&mu_);
  return failed_;
}

absl::StatusOr<std::shared_ptr<RequestStream>> Engine::Submit(std::vector<int32_t> prompt,
                                                              SamplingParams params,
                                                              SubmitOptions submit) {
  RETURN_IF_ERROR(params.Validate());
  if (submit.import != nullptr && (submit.export_kv || !params.seed.has_value())) {
    return absl::InvalidArgumentError(
        "an imported request needs params.seed (the prefill side's) and no export_kv");
  }
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  for (int32_t id : prompt) {
    if (id < 0 || id >= vocab_limit_) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is outside the vocabulary [0, ", vocab_limit_, ")"));
    }
  }
  const int64_t limit = max_seq_len();
  const int64_t len = static_cast<int64_t>(prompt.size());
  if (len >= limit) {
    return absl::InvalidArgumentError(absl::StrCat("This model's maximum context length is ", limit,
                                                   " tokens; the prompt has ", len,
                                                   " tokens and leaves no room to generate"));
  }
  params.max_tokens = std::min(params.max_tokens, limit - len);
  if (submit.export_kv) params.max_tokens = 1;
  auto seq = std::make_unique<Sequence>();
  seq->export_kv = submit.export_kv;
  seq->import = std::move(submit.import);
  seq->prompt_len = len;
  seq->tokens = std::move(prompt);
  seq->params = std::move(params);
  seq->rng = model::Rng(seq->params.seed.has_value()
                            ? *seq->params.seed
                            : std::random_device()() * 2654435761ull + std::random_device()());
  seq->stream = std::make_shared<RequestStream>();
  seq->decoder =
      std::make_unique<tokenizer::IncrementalDecoder>(*loaded_->tokenizer, /*skip_special=*/true);
  seq->arrival = absl::Now();
  std::shared_ptr<RequestStream> stream = seq->stream;
  // The import's notification takes mu_ under the import's lock: set it outside mu_.
  std::shared_ptr<KvImport> import = seq->import;
  if (import != nullptr) {
    import->set_notify([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      absl::MutexLock lock(&mu_);
    ++import_events_;
  });
}
absl::Status status = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the engine is shutting down");
  if (!failed_.ok()) {
    return absl::UnavailableError(absl::StrCat("the engine failed: ", failed_.message()));
  }
  if (stats_.waiting + stats_.importing + static_cast<int64_t>(submitted_.size()) >=
      options_.max_waiting) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the queue is full (", options_.max_waiting, " waiting requests)"));
  }
  seq->id = next_id_++;
  submitted_.push_back(std::move(seq));
  return absl::OkStatus();
}();
if (!status.ok()) {
  if (import != nullptr) import->set_notify(nullptr);
  return status;
}
return stream;
}  // namespace serving

void Engine::Intake() {
  {
    absl::MutexLock lock(&mu_);
    while (!submitted_.empty()) {
      if (submitted_.front()->import != nullptr) {
        importing_.push_back(std::move(submitted_.front()));
      } else {
        waiting_.push_back(std::move(submitted_.front()));
      }
      submitted_.pop_front();
    }
  }
  const auto drop_cancelled = [this](auto* list) {
    for (auto it = list->begin(); it != list->end();) {
      if ((*it)->stream->cancelled()) {
        Finish(it->get(), FinishReason::kAbort);
        it = list->erase(it);
      } else {
        ++it;
      }
    }
  };
  drop_cancelled(&running_);
  drop_cancelled(&waiting_);
  drop_cancelled(&importing_);
}

bool Engine::PollImports() {
  bool changed = false;
  const absl::Time now = absl::Now();
  for (auto it = importing_.begin(); it != importing_.end();) {
    Sequence* seq = it->get();
    if (!seq->import->has_blocks() && cache_.Reserve(seq->prompt_len + 1, &seq->table)) {
      seq->import->SetBlocks(seq->table);
      changed = true;
    }
    std::optional<absl::StatusOr<KvImport::Arrival>> arrival = seq->import->Take();
    absl::Status status;
    if (arrival.has_value() && arrival->ok()) {
      status = PlaceKv(seq, (*arrival)->pages, (*arrival)->checksum);
      seq->import->Placed(status);
    } else if (arrival.has_value()) {
      status = arrival->status();
    } else if (now - seq->arrival > options_.kv_import_timeout) {
      status = absl::DeadlineExceededError(
          absl::StrCat("no KV arrived within ", absl::FormatDuration(options_.kv_import_timeout)));
      seq->import->Fail(status);
    } else {
      ++it;
      continue;
    }
    changed = true;
    std::unique_ptr<Sequence> owned = std::move(*it);
    it = importing_.erase(it);
    if (!status.ok()) {
      std::fprintf(stderr, "engine: request %lld failed its KV import: %s\n",
                   static_cast<long long>(owned->id), status.ToString().c_str());
      Finish(owned.get(), FinishReason::kAbort);
      continue;
    }
    // The prefill side's sample drew from the same seeded generator: draw as it did.
    const SamplingParams& p = owned->params;
    if (!(p.temperature == 0 || p.top_k == 1)) owned->rng.Uniform();
    owned->computed = owned->prompt_len;
    owned->admitted_once = true;
    prompt_len_.Observe(static_cast<double>(owned->prompt_len));
    {
      absl::MutexLock lock(&mu_);
      stats_.prompt_tokens += owned->prompt_len;
    }
    Sequence* raw = owned.get();
    running_.push_back(std::move(owned));
    Emit(raw, (*arrival)->first);
  }
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [](const std::unique_ptr<Sequence>& s) { return s->finished; }),
                 running_.end());
  return changed;
}

std::shared_ptr<const KvPages> Engine::ExportKv(const Sequence& seq) const {
  auto pages = std::make_shared<KvPages>();
  pages->layers = model_.num_layers();
  pages->tokens = seq.prompt_len;
  pages->width = cache_.width();
  pages->data.resize(pages->layers * pages->tokens * pages->width);
  float* out = pages->data.data();
  for (int64_t l = 0; l < pages->layers; ++l) {
    for (int64_t pos = 0; pos < pages->tokens; ++pos, out += pages->width) {
      std::copy_n(cache_.Slot(l, seq.table, pos), pages->width, out);
    }
  }
  return pages;
}

absl::Status Engine::PlaceKv(Sequence* seq, const KvPages& pages, uint64_t checksum) {
  if (pages.layers != model_.num_layers() || pages.tokens != seq->prompt_len ||
      pages.width != cache_.width() ||
      static_cast<int64_t>(pages.data.size()) != pages.layers * pages.tokens * pages.width) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV pages of ", pages.layers, " layers x ", pages.tokens, " tokens x ",
                     pages.width, " floats do not fit a prompt of ", seq->prompt_len, " tokens in ",
                     model_.num_layers(), " layers x ", cache_.width(), " floats"));
  }
  const float* in = pages.data.data();
  uint64_t hash = Fnv1a(nullptr, 0);
  for (int64_t l = 0; l < pages.layers; ++l) {
    for (int64_t pos = 0; pos < pages.tokens; ++pos, in += pages.width) {
      float* slot = cache_.Slot(l, seq->table, pos);
      std::copy_n(in, pages.width, slot);
    }
  }
  // Read back from the blocks: what they hold must be what the prefill side sent.
  for (int64_t l = 0; l < pages.layers; ++l) {
    for (int64_t pos = 0; pos < pages.tokens; ++pos) {
      hash = Fnv1a(cache_.Slot(l, seq->table, pos), pages.width * sizeof(float), hash);
    }
  }
  if (hash != checksum) {
    return absl::DataLossError(absl::StrFormat(
        "the KV blocks received (checksum %016x) differ from those sent (%016x)", hash, checksum));
  }
  return absl::OkStatus();
}

void Engine::Finish(Sequence* seq, FinishReason reason, const absl::Status& error) {
  if (seq->finished) return;
  seq->finished = true;
  cache_.Release(&seq->table);
  if (seq->import != nullptr) {
    seq->import->set_notify(nullptr);
    if (reason == FinishReason::kAbort) seq->import->Fail(absl::AbortedError("request aborted"));
  }
  if (reason == FinishReason::kAbort) {
    RequestOutput out;
    out.finish = reason;
    out.error = error;
    out.prompt_tokens = seq->prompt_len;
    out.completion_tokens = seq->generated;
    out.time = absl::Now();
    seq->stream->Push(std::move(out));
  }
  e2e_.Observe(absl::ToDoubleSeconds(absl::Now() - seq->arrival));
  output_len_.Observe(static_cast<double>(seq->generated));
  absl::MutexLock lock(&mu_);
  ++stats_.finished[FinishReasonName(reason)];
}

void Engine::Preempt(Sequence* seq) {
  cache_.Release(&seq->table);
  seq->computed = 0;
  absl::MutexLock lock(&mu_);
  ++stats_.preemptions;
}

void Engine::Emit(Sequence* seq, const SampledToken& token) {
  const absl::Time now = absl::Now();
  seq->tokens.push_back(token.id);
  ++seq->generated;
  if (seq->generated == 1) {
    ttft_.Observe(absl::ToDoubleSeconds(now - seq->arrival));
  } else {
    itl_.Observe(absl::ToDoubleSeconds(now - seq->last_token));
  }
  seq->last_token = now;
  const SamplingParams& params = seq->params;
  RequestOutput out;
  out.token_ids = {token.id};
  if (params.logprobs >= 0) out.logprobs = {token};
  FinishReason reason = FinishReason::kNone;
  const bool stop_token = (!params.ignore_eos && eos_.has_value() && token.id == *eos_) ||
                          std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(),
                                    token.id) != params.stop_token_ids.end();
  bool stop_string = false;
  if (stop_token) {
    reason = FinishReason::kStop;
  } else {
    const size_t before = seq->text.size();
    absl::StatusOr<std::string> piece = seq->decoder->Add(token.id);
    if (piece.ok()) seq->text += *piece;
    size_t longest = 0;
    for (const std::string& s : params.stop) longest = std::max(longest, s.size());
    const size_t from = before >= longest ? before - longest + 1 : 0;
    size_t cut = std::string::npos;
    for (const std::string& s : params.stop) cut = std::min(cut, seq->text.find(s, from));
    if (cut != std::string::npos) {
      seq->text.resize(cut);
      reason = FinishReason::kStop;
      stop_string = true;
    }
  }
  if (reason == FinishReason::kNone &&
      (seq->generated >= params.max_tokens ||
       static_cast<int64_t>(seq->tokens.size()) >= max_seq_len())) {
    reason = FinishReason::kLength;
  }
  if (reason != FinishReason::kNone && !stop_string) seq->text += seq->decoder->Flush();
  size_t end = seq->text.size();
  if (reason == FinishReason::kNone) {
    // Hold back a tail that may be the start of a stop string, and never split a character.
    size_t hold = 0;
    for (const std::string& s : params.stop) {
      for (size_t k = std::min(s.size() - 1, end); k > hold; --k) {
        if (seq->text.compare(end - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
      }
    }
    end -= hold;
    while (end > seq->sent && (static_cast<unsigned char>(seq->text[end]) & 0xC0) == 0x80 &&
           end < seq->text.size()) {
      --end;
    }
  }
  if (end > seq->sent) {
    out.text = seq->text.substr(seq->sent, end - seq->sent);
    seq->sent = end;
  }
  out.finish = reason;
  out.prompt_tokens = seq->prompt_len;
  out.completion_tokens = seq->generated;
  out.time = now;
  if (reason != FinishReason::kNone) out.kv = std::move(seq->kv);
  {
    absl::MutexLock lock(&mu_);
    ++stats_.generation_tokens;
  }
  // Counted before the client sees the final event.
  if (reason != FinishReason::kNone) Finish(seq, reason);
  seq->stream->Push(std::move(out));
}

absl::StatusOr<bool> Engine::Step() {
  const bool tracing = traced_steps_ < options_.trace_steps;
  const double step_start = trace_.NowMicros();
  Intake();
  const bool imported = !importing_.empty() && PollImports();
  struct Planned {
    Sequence* seq;
    int64_t n;
  };
  std::vector<Planned> plan;
  int64_t budget = options_.max_batch_tokens;
  bool preempted = false;
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* seq = running_[i].get();
    const int64_t n =
        std::min<int64_t>(static_cast<int64_t>(seq->tokens.size()) - seq->computed, budget);
    bool fits = true;
    while (!cache_.Reserve(seq->computed + n, &seq->table)) {
      // Preempt the most recently admitted sequence (recompute later).
      std::unique_ptr<Sequence> victim = std::move(running_.back());
      running_.pop_back();
      Preempt(victim.get());
      const bool self = victim.get() == seq;
      waiting_.push_front(std::move(victim));
      preempted = true;
      if (self) {
        fits = false;
        break;
      }
    }
    if (!fits) break;
    plan.push_back({seq, n});
    budget -= n;
  }
  int64_t admitted_prompt_tokens = 0;
  while (!preempted && !waiting_.empty() && budget > 0 &&
         static_cast<int64_t>(running_.size()) < options_.max_running) {
    Sequence* seq = waiting_.front().get();
    const int64_t n =
        std::min<int64_t>(static_cast<int64_t>(seq->tokens.size()) - seq->computed, budget);
    if (!cache_.Reserve(seq->computed + n, &seq->table)) break;
    if (!seq->admitted_once) {
      seq->admitted_once = true;
      admitted_prompt_tokens += seq->prompt_len;
      prompt_len_.Observe(static_cast<double>(seq->prompt_len));
    }
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    plan.push_back({seq, n});
    budget -= n;
  }
  if (plan.empty()) {
    absl::MutexLock lock(&mu_);
    stats_.running = static_cast<int64_t>(running_.size());
    stats_.waiting = static_cast<int64_t>(waiting_.size());
    stats_.importing = static_cast<int64_t>(importing_.size());
    stats_.kv_blocks_used = cache_.num_used_blocks();
    return imported;
  }
  std::vector<SequenceChunk> chunks;
  int64_t prefill_tokens = 0, decode_tokens = 0;
  for (const Planned& p : plan) {
    const bool last = p.seq->computed + p.n == static_cast<int64_t>(p.seq->tokens.size());
    chunks.push_back({absl::MakeConstSpan(p.seq->tokens).subspan(p.seq->computed, p.n),
                      p.seq->computed, &p.seq->table, last ? 1 : 0});
    (p.seq->computed > 0 && p.n == 1 ? decode_tokens : prefill_tokens) += p.n;
  }
  if (options_.debug_step_delay_ms > 0) {
    absl::SleepFor(absl::Milliseconds(options_.debug_step_delay_ms));
  }
  const double forward_start = trace_.NowMicros();
  ASSIGN_OR_RETURN(
      Mat logits, model_.Forward(chunks, &cache_, nullptr, ep_.get(), tracing ? &trace_ : nullptr));
  if (ep_ != nullptr) RETURN_IF_ERROR(ep_->EndStep());
  const double sample_start = trace_.NowMicros();
  int64_t row = 0;
  for (const Planned& p : plan) {
    p.seq->computed += p.n;
    if (p.seq->computed < static_cast<int64_t>(p.seq->tokens.size())) continue;
    const SampledToken token =
        Sample(logits.row(row++).data(), vocab_limit_, p.seq->params, &p.seq->rng);
    if (p.seq->export_kv && p.seq->generated == 0) p.seq->kv = ExportKv(*p.seq);
    Emit(p.seq, token);
  }
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [](const std::unique_ptr<Sequence>& s) { return s->finished; }),
                 running_.end());
  const double step_end = trace_.NowMicros();
  if (tracing) {
    const std::map<std::string, std::string> args = {
        {"prefill_tokens", absl::StrCat(prefill_tokens)},
        {"decode_tokens", absl::StrCat(decode_tokens)},
        {"sequences", absl::StrCat(plan.size())},
        {"kv_blocks_used", absl::StrCat(cache_.num_used_blocks())}};
    trace_.AddComplete({"step", "engine", 0, 0, step_start, step_end - step_start, args});
    trace_.AddComplete({"schedule", "engine", 0, 0, step_start, forward_start - step_start, {}});
    trace_.AddComplete(
        {prefill_tokens > 0 ? (decode_tokens > 0 ? "prefill+decode" : "prefill") : "decode",
         "forward", 0, 0, forward_start, sample_start - forward_start, args});
    trace_.AddComplete({"sample", "engine", 0, 0, sample_start, step_end - sample_start, {}});
    if (++traced_steps_ == options_.trace_steps) {
      trace_written_ = true;
      RETURN_IF_ERROR(trace_.WriteFile(options_.trace_path));
    }
  }
  absl::MutexLock lock(&mu_);
  ++stats_.steps;
  stats_.prompt_tokens += admitted_prompt_tokens;
  stats_.running = static_cast<int64_t>(running_.size());
  stats_.waiting = static_cast<int64_t>(waiting_.size());
  stats_.importing = static_cast<int64_t>(importing_.size());
  stats_.kv_blocks_used = cache_.num_used_blocks();
  return true;
}

EngineStats Engine::Stats() const {
  absl::MutexLock lock(&mu_);
  EngineStats stats = stats_;
  stats.waiting += static_cast<int64_t>(submitted_.size());
  return stats;
}

std::string Engine::Metrics() const {
  const EngineStats s = Stats();
  std::string out;
  absl::StrAppend(
      &out,
      RenderSamples("dsmoe_num_requests_running", "gauge",
                    "Requests in the running batch (vLLM's num_requests_running).",
                    {{"", static_cast<double>(s.running)}}),
      RenderSamples("dsmoe_num_requests_waiting", "gauge",
                    "Requests waiting to be scheduled (vLLM's num_requests_waiting).",
                    {{"", static_cast<double>(s.waiting)}}),
      RenderSamples("dsmoe_kv_cache_usage_perc", "gauge",
                    "Fraction of KV cache blocks in use, 0 to 1 (vLLM's kv_cache_usage_perc).",
                    {{"", s.kv_blocks_total > 0 ? static_cast<double>(s.kv_blocks_used) /
                                                      static_cast<double>(s.kv_blocks_total)
                                                : 0.0}}),
      RenderSamples("dsmoe_kv_cache_blocks", "gauge", "KV cache blocks in all.",
                    {{"", static_cast<double>(s.kv_blocks_total)}}),
      RenderSamples("dsmoe_prompt_tokens_total", "counter", "Prompt tokens admitted.",
                    {{"", static_cast<double>(s.prompt_tokens)}}),
      RenderSamples("dsmoe_generation_tokens_total", "counter", "Tokens generated.",
                    {{"", static_cast<double>(s.generation_tokens)}}),
      RenderSamples("dsmoe_num_preemptions_total", "counter",
                    "Sequences preempted (KV blocks freed, recomputed later).",
                    {{"", static_cast<double>(s.preemptions)}}),
      RenderSamples("dsmoe_engine_steps_total", "counter", "Engine steps that ran the model.",
                    {{"", static_cast<double>(s.steps)}}));
  std::vector<std::pair<std::string, double>> finished;
  for (const char* reason : {"stop", "length", "abort"}) {
    auto it = s.finished.find(reason);
    finished.push_back({absl::StrCat("finished_reason=\"", reason, "\""),
                        it == s.finished.end() ? 0.0 : static_cast<double>(it->second)});
  }
  absl::StrAppend(
      &out,
      RenderSamples("dsmoe_request_success_total", "counter",
                    "Finished requests by finish reason (vLLM's request_success_total).", finished),
      ttft_.Render("dsmoe_time_to_first_token_seconds", "Time to first token."),
      itl_.Render("dsmoe_inter_token_latency_seconds", "Time between tokens of a request."),
      e2e_.Render("dsmoe_e2e_request_latency_seconds", "Request latency, arrival to finish."),
      prompt_len_.Render("dsmoe_request_prompt_tokens", "Prompt tokens of a request."),
      output_len_.Render("dsmoe_request_generation_tokens", "Generated tokens of a request."));
  if (ep_ != nullptr) absl::StrAppend(&out, ep_->Metrics());
  return out;
}

}  // namespace serving
