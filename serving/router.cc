#include "serving/router.h"

#include <algorithm>
#include <deque>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "serving/http_server.h"
#include "serving/kv_transfer.h"
#include "serving/metrics.h"
#include "serving/openai_api.h"
// After Eigen (through the engine): httplib.h brings resolv.h, whose _res macro breaks Eigen.
#include "httplib.h"

namespace serving {
namespace {

void SendJson(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

void SendUnavailable(httplib::Response& res, const std::string& message) {
  SendJson(res, 503, ApiError{503, message, "service_unavailable", "", ""}.ToJson());
}

void SetTimeouts(httplib::Client& client, absl::Duration connect, absl::Duration read) {
  const int64_t c = absl::ToInt64Microseconds(connect), r = absl::ToInt64Microseconds(read);
  client.set_connection_timeout(c / 1000000, c % 1000000);
  client.set_read_timeout(r / 1000000, r % 1000000);
  client.set_write_timeout(r / 1000000, r % 1000000);
}

}  // namespace

// One request's exchange with a decode instance, run on its own thread: the answer's status and
// headers, then its body in pieces as they arrive.
struct Router::Upstream {
  absl::Mutex mu;
  bool headers ABSL_GUARDED_BY(mu) = false;
  int status ABSL_GUARDED_BY(mu) = 0;
  std::string content_type ABSL_GUARDED_BY(mu);
  std::string failed_instance ABSL_GUARDED_BY(mu);  // the decode instance's X-Dsmoe-Failed-Instance
  std::deque<std::string> chunks ABSL_GUARDED_BY(mu);
  bool done ABSL_GUARDED_BY(mu) = false;
  std::string error ABSL_GUARDED_BY(mu);     // when done: empty, or what failed
  bool refused ABSL_GUARDED_BY(mu) = false;  // the connection could not be made
  std::atomic<bool> cancel{false};
  std::thread thread;

  ~Upstream() {
    cancel.store(true);
    if (thread.joinable()) thread.join();
  }

  // Runs `request` against `url` (on this thread).
  void Run(const std::string& url, httplib::Request request, absl::Duration timeout) {
    httplib::Client client(url);
    SetTimeouts(client, absl::Seconds(2), timeout);
    client.set_keep_alive(false);
    request.response_handler = [this](const httplib::Response& r) {
      absl::MutexLock lock(&mu);
      headers = true;
      status = r.status;
      content_type = r.get_header_value("Content-Type");
      failed_instance = r.get_header_value(kFailedInstanceHeader);
      return !cancel.load();
    };
    request.content_receiver = [this](const char* data, size_t n, uint64_t, uint64_t) {
      absl::MutexLock lock(&mu);
      chunks.emplace_back(data, n);
      return !cancel.load();
    };
    httplib::Result result = client.send(request);
    absl::MutexLock lock(&mu);
    done = true;
    if (!result) {
      error = httplib::to_string(result.error());
      refused = result.error() == httplib::Error::Connection;
    }
  }

  // Waits until the headers came or the exchange ended.
  void AwaitHeaders() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](Upstream* u) ABSL_SHARED_LOCKS_REQUIRED(u->mu) { return u->headers || u->done; },
        this));
  }
  void AwaitDone() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
  }
};

Router::Router(const RouterOptions& options) : options_(options), listener_(options.listen) {
  Routes();
  prober_ = std::thread([this] { ProbeLoop(); });
}

Router::~Router() {
  Stop();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  prober_.join();
}

absl::StatusOr<int> Router::Bind() { return listener_.Bind(); }
void Router::Serve() { listener_.Serve(); }
void Router::Stop() { listener_.Stop(); }

absl::Status Router::Register(const std::string& role, const std::string& url, int kv_rank) {
  if (role != "prefill" && role != "decode") {
    return absl::InvalidArgumentError(
        absl::StrCat("role '", role, "': an instance is 'prefill' or 'decode'"));
  }
  if (!absl::StartsWith(url, "http://") || url.size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat("url '", url, "': must be http://host:port"));
  }
  absl::MutexLock lock(&mu_);
  Instance& in = instances_[url];
  if (in.url.empty()) {
    std::fprintf(stderr, "router: %s instance %s registered\n", role.c_str(), url.c_str());
  }
  in.role = role;
  in.url = url;
  in.kv_rank = kv_rank;
  return absl::OkStatus();
}

void Router::ProbeLoop() {
  while (true) {
    std::vector<std::string> urls;
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.probe_interval)) return;
      for (const auto& [url, in] : instances_) urls.push_back(url);
    }
    for (const std::string& url : urls) {
      httplib::Client client(url);
      SetTimeouts(client, absl::Milliseconds(500), absl::Seconds(1));
      httplib::Result r = client.Get("/health");
      const absl::Time now = absl::Now();
      absl::MutexLock lock(&mu_);
      Instance& in = instances_[url];
      if (r && r->status == 200) {
        if (!in.up) std::fprintf(stderr, "router: %s is up\n", url.c_str());
        in.up = true;
        in.last_ok = now;
        in.error.clear();
      } else if (now - in.last_ok > options_.instance_timeout ||
                 (!r && in.up && r.error() == httplib::Error::Connection)) {
        if (in.up) std::fprintf(stderr, "router: %s is down\n", url.c_str());
        in.up = false;
        in.error = r ? absl::StrCat("/health answered ", r->status)
                     : absl::StrCat("/health: ", httplib::to_string(r.error()));
      }
    }
  }
}

Router::Instance* Router::Pick(const std::string& role) {
  Instance* best = nullptr;
  for (auto& [url, in] : instances_) {
    if (in.role != role || !in.up) continue;
    if (best == nullptr || in.inflight < best->inflight ||
        (in.inflight == best->inflight && in.requests < best->requests)) {
      best = &in;
    }
  }
  if (best != nullptr) {
    ++best->inflight;
    ++best->requests;
  }
  return best;
}

void Router::MarkFailed(const std::string& url, const std::string& error) {
  absl::MutexLock lock(&mu_);
  auto it = instances_.find(url);
  if (it == instances_.end()) return;
  if (it->second.up) std::fprintf(stderr, "router: %s failed: %s\n", url.c_str(), error.c_str());
  it->second.up = false;
  it->second.error = error;
  ++it->second.failures;
}

void Router::CountResponse(int status) {
  absl::MutexLock lock(&mu_);
  ++responses_[status];
}

void Router::Routes() {
  httplib::Server& s = listener_.server();
  s.set_logger(
      [this](const httplib::Request&, const httplib::Response& res) { CountResponse(res.status); });
  InstallApiErrorHandlers(s);
  s.Post("/register", [this](const httplib::Request& req, httplib::Response& res) {
    const Json j = Json::parse(req.body, nullptr, false);
    absl::Status status = absl::InvalidArgumentError("the body must be {role, url, kv_rank}");
    if (j.is_object() && j.contains("role") && j["role"].is_string() && j.contains("url") &&
        j["url"].is_string()) {
      status = Register(
          j["role"], j["url"],
          j.contains("kv_rank") && j["kv_rank"].is_number_integer() ? j["kv_rank"].get<int>() : -1);
    }
    if (!status.ok()) {
      SendJson(res, 400, ErrorFromStatus(status).ToJson());
      return;
    }
    SendJson(res, 200, {{"registered", j["url"]}});
  });
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    Json list = Json::array();
    bool prefill = false, decode = false;
    absl::MutexLock lock(&mu_);
    for (const auto& [url, in] : instances_) {
      Json j = {{"role", in.role},
                {"url", url},
                {"state", in.up ? "up" : "down"},
                {"inflight", in.inflight},
                {"requests", in.requests},
                {"failures", in.failures}};
      if (!in.error.empty()) j["error"] = in.error;
      list.push_back(j);
      (in.role == "prefill" ? prefill : decode) |= in.up;
    }
    const bool ok = prefill && decode;
    SendJson(res, ok ? 200 : 503,
             {{"status", ok ? "ok" : "unavailable"}, {"role", "router"}, {"instances", list}});
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::vector<std::pair<std::string, double>> up, inflight, requests, failures, codes;
    double upstream_failures;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [url, in] : instances_) {
        const std::string l =
            absl::StrCat("role=\"", in.role, "\",instance=\"", EscapeLabel(url), "\"");
        up.push_back({l, in.up ? 1.0 : 0.0});
        inflight.push_back({l, static_cast<double>(in.inflight)});
        requests.push_back({l, static_cast<double>(in.requests)});
        failures.push_back({l, static_cast<double>(in.failures)});
      }
      for (const auto& [code, n] : responses_) {
        codes.push_back({absl::StrCat("code=\"", code, "\""), static_cast<double>(n)});
      }
      upstream_failures = static_cast<double>(upstream_failures_);
    }
    res.set_content(
        absl::StrCat(RenderSamples("dsmoe_router_instance_up", "gauge",
                                   "1 while the instance answers its health checks.", up),
                     RenderSamples("dsmoe_router_instance_inflight", "gauge",
                                   "Requests the router has in flight on the instance.", inflight),
                     RenderSamples("dsmoe_router_instance_requests_total", "counter",
                                   "Requests the router sent to the instance.", requests),
                     RenderSamples("dsmoe_router_instance_failures_total", "counter",
                                   "Times the instance failed a request or went down.", failures),
                     RenderSamples("dsmoe_router_upstream_failures_total", "counter",
                                   "Requests failed with 503 because an instance failed.",
                                   {{"", upstream_failures}}),
                     RenderSamples("dsmoe_http_responses_total", "counter",
                                   "HTTP responses by status code.", codes)),
        "text/plain; version=0.0.4; charset=utf-8");
  });
  const auto generate = [this](const httplib::Request& req, httplib::Response& res) {
    Generate(req, res);
  };
  s.Post("/v1/completions", generate);
  s.Post("/v1/chat/completions", generate);
  const auto forward = [this](const httplib::Request& req, httplib::Response& res) {
    Forward(req, res);
  };
  s.Get(".*", forward);
  s.Post(".*", forward);
  s.Put(".*", forward);
  s.Delete(".*", forward);
  s.Patch(".*", forward);
}

void Router::Forward(const httplib::Request& req, httplib::Response& res) {
  std::string url;
  {
    absl::MutexLock lock(&mu_);
    Instance* decode = Pick("decode");
    if (decode != nullptr) {
      url = decode->url;
      --decode->inflight;
    }
  }
  if (url.empty()) {
    SendUnavailable(res, "no decode instance is up");
    return;
  }
  httplib::Client client(url);
  SetTimeouts(client, absl::Seconds(2), options_.upstream_timeout);
  httplib::Request r;
  r.method = req.method;
  r.path = req.target.empty() ? req.path : req.target;
  r.body = req.body;
  if (req.has_header("Content-Type"))
    r.set_header("Content-Type", req.get_header_value("Content-Type"));
  httplib::Result result = client.send(r);
  if (!result) {
    MarkFailed(url, httplib::to_string(result.error()));
    SendUnavailable(res, absl::StrCat("decode instance ", url,
                                      " failed: ", httplib::to_string(result.error())));
    return;
  }
  res.status = result->status;
  res.set_content(result->body, result->get_header_value("Content-Type"));
}

void Router::Generate(const httplib::Request& req, httplib::Response& res) {
  const auto release = [this](const std::string& url) {
    absl::MutexLock lock(&mu_);
    auto it = instances_.find(url);
    if (it != instances_.end()) --it->second.inflight;
  };
  std::shared_ptr<Upstream> up;
  std::string decode_url;
  int status = 0;
  std::string content_type, failed_instance, error;
  // A decode instance that refuses the connection has not seen the request (it may have died
  // since its last probe): the request goes to another one, twice at most.
  for (int attempt = 0;; ++attempt) {
    std::string prefill_url;
    int prefill_rank = -1, decode_rank = -1;
    {
      absl::MutexLock lock(&mu_);
      Instance* decode = Pick("decode");
      Instance* prefill = Pick("prefill");
      if (decode == nullptr || prefill == nullptr) {
        if (decode != nullptr) --decode->inflight;
        if (prefill != nullptr) --prefill->inflight;
        ++upstream_failures_;
        SendUnavailable(
            res, decode == nullptr ? "no decode instance is up" : "no prefill instance is up");
        return;
      }
      decode_url = decode->url;
      prefill_url = prefill->url;
      decode_rank = decode->kv_rank;
      prefill_rank = prefill->kv_rank;
    }
    up = std::make_shared<Upstream>();
    httplib::Request r;
    r.method = "POST";
    r.path = req.path;
    r.body = req.body;
    r.set_header("Content-Type", "application/json");
    r.set_header(kPrefillHeader, prefill_url);
    if (prefill_rank >= 0 && decode_rank >= 0) {
      r.set_header(kPrefillRankHeader, std::to_string(prefill_rank));
    }
    up->thread =
        std::thread([this, up = up.get(), decode_url, r = std::move(r), release]() mutable {
          up->Run(decode_url, std::move(r), options_.upstream_timeout);
          release(decode_url);
        });
    up->AwaitHeaders();
    release(prefill_url);  // the decode instance answers once the KV has moved
    bool refused;
    {
      absl::MutexLock lock(&up->mu);
      status = up->status;
      content_type = up->content_type;
      failed_instance = up->failed_instance;
      error = up->error;
      refused = up->refused;
    }
    if (status != 0 || !refused || attempt == 2) break;
    MarkFailed(decode_url, error);
  }
  const auto fail = [&](const std::string& url, const std::string& what) {
    MarkFailed(url, what);
    {
      absl::MutexLock lock(&mu_);
      ++upstream_failures_;
    }
    SendUnavailable(res, absl::StrCat("decode instance ", url, " failed: ", what));
  };
  if (status == 0) {
    fail(decode_url, error);
    return;
  }
  if (!failed_instance.empty()) MarkFailed(failed_instance, "it failed a KV transfer");
  if (!absl::StartsWith(content_type, "text/event-stream")) {
    // The whole answer first, so that a failure can still be a 503.
    up->AwaitDone();
    std::string body;
    {
      absl::MutexLock lock(&up->mu);
      error = up->error;
      for (const std::string& c : up->chunks) body += c;
    }
    if (error.empty() && status == 200) {
      // A decode instance whose engine failed after the status went out answers an error body.
      const Json answer = Json::parse(body, nullptr, /*allow_exceptions=*/false);
      if (answer.is_object() && answer.contains("error") && answer["error"].is_object()) {
        error = answer["error"].value("message", std::string("an error body"));
      }
    }
    if (!error.empty()) {
      fail(decode_url, error);
      return;
    }
    res.status = status;
    if (!failed_instance.empty()) {
      absl::MutexLock l(&mu_);
      ++upstream_failures_;
    }
    res.set_content(body, content_type);
    return;
  }
  res.status = status;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, up, decode_url](size_t, httplib::DataSink& sink) {
        while (true) {
          std::deque<std::string> chunks;
          bool done;
          std::string error;
          {
            absl::MutexLock lock(&up->mu);
            up->mu.AwaitWithTimeout(absl::Condition(
                                        +[](Upstream* u) ABSL_SHARED_LOCKS_REQUIRED(u->mu) {
                                          return !u->chunks.empty() || u->done;
                                        },
                                        up.get()),
                                    absl::Milliseconds(200));
            chunks.swap(up->chunks);
            done = up->done;
            error = up->error;
          }
          for (const std::string& c : chunks) {
            if (!sink.write(c.data(), c.size())) {
              up->cancel.store(true);  // the client went away: so does the decode request
              return false;
            }
          }
          if (chunks.empty() && !done && !sink.is_writable()) {
            up->cancel.store(true);
            return false;
          }
          if (!done) continue;
          if (!error.empty()) {
            MarkFailed(decode_url, error);
            {
              absl::MutexLock lock(&mu_);
              ++upstream_failures_;
            }
            const std::string event = absl::StrCat(
                "data: ",
                Dump(ApiError{
                    503,
                    absl::StrCat("decode instance ", decode_url, " failed mid-stream: ", error),
                    "service_unavailable", "", ""}
                         .ToJson()),
                "\n\n");
            sink.write(event.data(), event.size());
          }
          sink.done();
          return true;
        }
      },
      [up](bool) { up->cancel.store(true); });
}

RouterRegistration::RouterRegistration(std::string router_url, std::string role, std::string url,
                                       int kv_rank, absl::Duration interval) {
  const std::string body = Json{{"role", role}, {"url", url}, {"kv_rank", kv_rank}}.dump();
  thread_ = std::thread([this, router_url, body, interval] {
    bool told = false;
    while (true) {
      httplib::Client client(router_url);
      SetTimeouts(client, absl::Milliseconds(500), absl::Seconds(1));
      httplib::Result r = client.Post("/register", body, "application/json");
      if (!r || r->status != 200) {
        if (!told) {
          std::fprintf(
              stderr, "server: cannot register with the router at %s yet: %s\n", router_url.c_str(),
              r ? absl::StrCat("HTTP ", r->status).c_str() : httplib::to_string(r.error()).c_str());
        }
        told = true;
      }
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
    }
  });
}

RouterRegistration::~RouterRegistration() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

}  // namespace serving
