#include "serving/kv_transfer.h"

#include <algorithm>
#include <cstring>
#include <future>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "comm/buffer.h"
#include "core/status_macros.h"
#include "httplib.h"

namespace serving {

using Json = nlohmann::json;

namespace {

// A seconds count for httplib's timeouts, at least 1 ms.
std::pair<time_t, time_t> SecUsec(absl::Duration d) {
  const int64_t us = std::max<int64_t>(1000, absl::ToInt64Microseconds(d));
  return {static_cast<time_t>(us / 1000000), static_cast<time_t>(us % 1000000)};
}

std::unique_ptr<httplib::Client> ClientFor(const std::string& url, absl::Duration timeout) {
  auto client = std::make_unique<httplib::Client>(url);
  const auto [cs, cus] = SecUsec(std::min(timeout, absl::Seconds(2)));
  client->set_connection_timeout(cs, cus);
  const auto [rs, rus] = SecUsec(timeout);
  client->set_read_timeout(rs, rus);
  client->set_write_timeout(rs, rus);
  client->set_keep_alive(false);
  return client;
}

std::string HttpError(const httplib::Result& r) {
  if (!r) return httplib::to_string(r.error());
  return absl::StrCat("HTTP ", r->status, ": ", r->body.substr(0, 300));
}

}  // namespace

Json SamplingParamsToJson(const SamplingParams& p) {
  Json j = {{"temperature", p.temperature},
            {"top_k", p.top_k},
            {"top_p", p.top_p},
            {"max_tokens", p.max_tokens},
            {"logprobs", p.logprobs},
            {"ignore_eos", p.ignore_eos},
            {"stop", p.stop},
            {"stop_token_ids", p.stop_token_ids}};
  if (p.seed.has_value()) j["seed"] = *p.seed;
  return j;
}

absl::StatusOr<SamplingParams> SamplingParamsFromJson(const Json& j) {
  SamplingParams p;
  try {
    p.temperature = j.at("temperature").get<double>();
    p.top_k = j.at("top_k").get<int64_t>();
    p.top_p = j.at("top_p").get<double>();
    p.max_tokens = j.at("max_tokens").get<int64_t>();
    p.logprobs = j.at("logprobs").get<int64_t>();
    p.ignore_eos = j.at("ignore_eos").get<bool>();
    p.stop = j.at("stop").get<std::vector<std::string>>();
    p.stop_token_ids = j.at("stop_token_ids").get<std::vector<int32_t>>();
    if (j.contains("seed")) p.seed = j.at("seed").get<uint64_t>();
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("sampling params: ", e.what()));
  }
  RETURN_IF_ERROR(p.Validate());
  return p;
}

Json SampledTokenToJson(const SampledToken& t) {
  Json top = Json::array();
  for (const TokenLogprob& x : t.top) top.push_back({x.id, x.logprob});
  return {{"id", t.id}, {"logprob", t.logprob}, {"top", top}};
}

absl::StatusOr<SampledToken> SampledTokenFromJson(const Json& j) {
  SampledToken t;
  try {
    t.id = j.at("id").get<int32_t>();
    t.logprob = j.at("logprob").get<float>();
    for (const Json& x : j.at("top"))
      t.top.push_back({x.at(0).get<int32_t>(), x.at(1).get<float>()});
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("sampled token: ", e.what()));
  }
  return t;
}

const char* TransferStateName(TransferState state) {
  switch (state) {
    case TransferState::kBootstrapping:
      return "bootstrapping";
    case TransferState::kWaiting:
      return "waiting";
    case TransferState::kTransferring:
      return "transferring";
    case TransferState::kDone:
      return "done";
    case TransferState::kFailed:
      return "failed";
  }
  return "";
}

TransferStats::TransferStats()
    : seconds_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}) {}

void TransferStats::Move(TransferState from, TransferState to) {
  absl::MutexLock lock(&mu_);
  if (from != TransferState::kDone && from != TransferState::kFailed) --now_[from];
  if (to == TransferState::kDone) {
    ++done_;
  } else if (to == TransferState::kFailed) {
    ++failed_;
  } else {
    ++now_[to];
  }
}

void TransferStats::Received(int64_t bytes, absl::Duration took, bool mpi) {
  seconds_.Observe(absl::ToDoubleSeconds(took));
  absl::MutexLock lock(&mu_);
  received_bytes_ += bytes;
  over_mpi_ += mpi ? 1 : 0;
}

void TransferStats::Sent(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  sent_bytes_ += bytes;
}

void TransferStats::set_outbox(int64_t requests) {
  absl::MutexLock lock(&mu_);
  outbox_ = requests;
}

std::string TransferStats::Render() const {
  std::vector<std::pair<std::string, double>> now, total;
  double received, sent, outbox, over_mpi;
  {
    absl::MutexLock lock(&mu_);
    for (TransferState s :
         {TransferState::kBootstrapping, TransferState::kWaiting, TransferState::kTransferring}) {
      auto it = now_.find(s);
      now.push_back({absl::StrCat("state=\"", TransferStateName(s), "\""),
                     it == now_.end() ? 0.0 : static_cast<double>(it->second)});
    }
    total = {{"state=\"done\"", static_cast<double>(done_)},
             {"state=\"failed\"", static_cast<double>(failed_)}};
    received = static_cast<double>(received_bytes_);
    sent = static_cast<double>(sent_bytes_);
    outbox = static_cast<double>(outbox_);
    over_mpi = static_cast<double>(over_mpi_);
  }
  return absl::StrCat(
      RenderSamples("dsmoe_kv_transfers_in_progress", "gauge",
                    "KV transfers this decode instance runs now, by state.", now),
      RenderSamples("dsmoe_kv_transfers_total", "counter",
                    "KV transfers this decode instance finished, done or failed.", total),
      RenderSamples("dsmoe_kv_transfers_over_mpi_total", "counter",
                    "Transfers done whose pages came over MPI (the others over HTTP).",
                    {{"", over_mpi}}),
      RenderSamples("dsmoe_kv_transfer_received_bytes_total", "counter",
                    "KV page bytes this decode instance received.", {{"", received}}),
      RenderSamples("dsmoe_kv_transfer_sent_bytes_total", "counter",
                    "KV page bytes this prefill instance sent.", {{"", sent}}),
      RenderSamples("dsmoe_kv_outbox_requests", "gauge",
                    "Prefilled requests whose KV waits for its decode instance.", {{"", outbox}}),
      seconds_.Render("dsmoe_kv_transfer_seconds",
                      "A KV transfer, from allocating the blocks to placing the pages."));
}

void KvOutbox::Put(const std::string& id, std::shared_ptr<const KvPages> pages) {
  absl::MutexLock lock(&mu_);
  ExpireLocked();
  pages_[id] = {std::move(pages), absl::Now() + hold_};
}

absl::StatusOr<std::shared_ptr<const KvPages>> KvOutbox::Take(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ExpireLocked();
  auto it = pages_.find(id);
  if (it == pages_.end()) {
    return absl::NotFoundError(absl::StrCat("no KV pages for transfer '", id, "' (expired?)"));
  }
  std::shared_ptr<const KvPages> pages = std::move(it->second.first);
  pages_.erase(it);
  return pages;
}

int64_t KvOutbox::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(pages_.size());
}

void KvOutbox::ExpireLocked() {
  const absl::Time now = absl::Now();
  for (auto it = pages_.begin(); it != pages_.end();) {
    it = it->second.second < now ? pages_.erase(it) : std::next(it);
  }
}

KvChannel::KvChannel(std::unique_ptr<comm::Communicator> comm) : comm_(std::move(comm)) {}

absl::Status KvChannel::Receive(int from, KvPages* pages,
                                const std::function<absl::Status()>& ask_send) {
  absl::MutexLock lock(&mu_);
  const comm::RecvOp recv{comm::HostBuffer(absl::Span<float>(pages->data)), from, 0};
  ASSIGN_OR_RETURN(std::unique_ptr<comm::Request> request, comm_->StartBatchP2P({}, {&recv, 1}));
  // The sender's blocking send completes only while this rank makes MPI progress (a large message
  // waits for the receiver's rendezvous), so this thread waits in MPI while another one asks.
  std::future<absl::Status> asked = std::async(std::launch::async, ask_send);
  const absl::Status received = request->Wait();
  const absl::Status ask = asked.get();
  RETURN_IF_ERROR(ask);
  return received;
}

bool KvChannel::usable() {
  absl::MutexLock lock(&mu_);
  return comm_->aborted().ok();
}

absl::Status KvChannel::Send(int to, const KvPages& pages) {
  absl::MutexLock lock(&mu_);
  return comm_->Send(comm::ConstHostBuffer(absl::Span<const float>(pages.data)), to, 0);
}

absl::Status FetchKv(const PrefillPeer& peer, const std::string& transfer_id,
                     const std::vector<int32_t>& prompt, const SamplingParams& params,
                     KvImport* import, const FetchOptions& options) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options.timeout;
  TransferState state = TransferState::kBootstrapping;
  const auto move = [&](TransferState to) {
    if (options.stats != nullptr) options.stats->Move(state, to);
    state = to;
  };
  if (options.stats != nullptr) options.stats->Move(TransferState::kDone, state);
  int64_t bytes = 0;
  bool mpi = false;
  const absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(const std::vector<int32_t> blocks, import->WaitBlocks(deadline - absl::Now()));
    move(TransferState::kWaiting);
    const Json body = {{"transfer_id", transfer_id},
                       {"prompt", prompt},
                       {"params", SamplingParamsToJson(params)},
                       {"decode_blocks", blocks}};
    std::unique_ptr<httplib::Client> client = ClientFor(peer.url, deadline - absl::Now());
    httplib::Result r = client->Post("/internal/prefill", body.dump(), "application/json");
    if (!r || r->status != 200) {
      return absl::UnavailableError(absl::StrCat("prefill: ", HttpError(r)));
    }
    const Json answer = Json::parse(r->body, nullptr, false);
    if (answer.is_discarded() || !answer.is_object()) {
      return absl::UnavailableError("prefill: the answer is not a JSON object");
    }
    KvPages pages;
    uint64_t checksum = 0;
    try {
      pages.layers = answer.at("layers").get<int64_t>();
      pages.tokens = answer.at("tokens").get<int64_t>();
      pages.width = answer.at("width").get<int64_t>();
      if (!absl::SimpleHexAtoi(answer.at("checksum").get<std::string>(), &checksum)) {
        return absl::UnavailableError("prefill: a bad checksum");
      }
    } catch (const Json::exception& e) {
      return absl::UnavailableError(absl::StrCat("prefill: ", e.what()));
    }
    if (pages.tokens != static_cast<int64_t>(prompt.size()) || pages.layers < 1 ||
        pages.width < 1 || pages.layers * pages.width > (int64_t{1} << 24)) {
      return absl::UnavailableError("prefill: pages of an unexpected shape");
    }
    ASSIGN_OR_RETURN(SampledToken first, SampledTokenFromJson(answer.at("first")));
    pages.data.resize(pages.layers * pages.tokens * pages.width);
    move(TransferState::kTransferring);
    mpi = peer.kv_rank >= 0 && options.channel != nullptr && options.channel->usable();
    if (mpi) {
      RETURN_IF_ERROR(options.channel->Receive(peer.kv_rank, &pages, [&]() -> absl::Status {
        std::unique_ptr<httplib::Client> c = ClientFor(peer.url, deadline - absl::Now());
        httplib::Result s = c->Post(
            absl::StrCat("/internal/kv_send/", transfer_id, "?rank=", options.channel->rank()), "",
            "text/plain");
        if (!s || s->status != 200) {
          return absl::UnavailableError(absl::StrCat("kv_send: ", HttpError(s)));
        }
        return absl::OkStatus();
      }));
    } else {
      client = ClientFor(peer.url, deadline - absl::Now());
      char* out = reinterpret_cast<char*>(pages.data.data());
      const size_t want = pages.data.size() * sizeof(float);
      size_t got = 0;
      httplib::Result g =
          client->Get(absl::StrCat("/internal/kv/", transfer_id), [&](const char* data, size_t n) {
            if (got + n > want) return false;
            std::memcpy(out + got, data, n);
            got += n;
            return true;
          });
      if (!g || g->status != 200 || got != want) {
        return absl::UnavailableError(absl::StrCat(
            "kv pages: ", g ? absl::StrCat("got ", got, " of ", want, " bytes, HTTP ", g->status)
                            : HttpError(g)));
      }
    }
    bytes = pages.bytes();
    import->Complete(std::move(first), std::move(pages), checksum);
    return import->WaitPlaced(deadline - absl::Now());
  }();
  if (!status.ok()) {
    const absl::Status error = absl::UnavailableError(
        absl::StrCat("KV transfer from prefill instance ", peer.url, " failed while ",
                     TransferStateName(state), ": ", status.message()));
    import->Fail(error);
    move(TransferState::kFailed);
    return error;
  }
  move(TransferState::kDone);
  if (options.stats != nullptr) options.stats->Received(bytes, absl::Now() - start, mpi);
  return absl::OkStatus();
}

}  // namespace serving
