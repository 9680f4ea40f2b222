// The router of prefill/decode disaggregation (serving/README.md "Roles"): an HTTP front end with
// the server's OpenAI API that holds no model. Instances register with it (POST /register, which
// every prefill and decode instance started with --router repeats each second); it probes their
// /health, and sends each generation request to the least loaded decode instance that is up,
// naming the least loaded prefill instance in the X-Dsmoe-Prefill header: the decode instance has
// the prefill instance run the prompt and produce the first token, fetches its KV pages, and
// streams the rest, which the router passes through to the client.
//
// Faults: an instance that cannot be reached, or whose /health fails for instance_timeout, is down
// and gets no new requests (GET /health lists every instance with its state; 503 while no prefill
// or no decode instance is up). A request whose decode instance fails (refused, reset, silent for
// upstream_timeout) is answered 503, or, once its stream has begun, ends with an error event; a
// prefill failure comes back from the decode instance as its 503. Requests the router does not
// generate itself (/v1/models, /tokenize, /detokenize, unknown routes) go to a decode instance, so
// that every answer, bad input's included, is the server's own.
#ifndef SERVING_ROUTER_H_
#define SERVING_ROUTER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "serving/http_listener.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace serving {

struct RouterOptions {
  ListenOptions listen;
  absl::Duration probe_interval = absl::Milliseconds(250);
  // An instance whose /health has not answered 200 for this long is down.
  absl::Duration instance_timeout = absl::Seconds(2);
  // The longest the router waits for a decode instance's next bytes (its answer's headers come
  // after the KV transfer, so this should exceed the instances' --kv_timeout_ms).
  absl::Duration upstream_timeout = absl::Seconds(60);
};

class Router {
 public:
  explicit Router(const RouterOptions& options);
  ~Router();  // stops probing and serving

  // As HttpServer's: binds (returns the port), serves until Stop, stops.
  absl::StatusOr<int> Bind();
  void Serve();
  void Stop();

  // Adds or refreshes an instance: role "prefill" or "decode", its base URL, its rank in the KV
  // channel of an MPI job (-1: none; pages then go over HTTP). What POST /register does.
  // INVALID_ARGUMENT for another role or a URL that is not http://.
  absl::Status Register(const std::string& role, const std::string& url, int kv_rank);

 private:
  struct Instance {
    std::string role, url;
    int kv_rank = -1;
    bool up = false;
    absl::Time last_ok = absl::InfinitePast();
    std::string error;
    int64_t inflight = 0, requests = 0, failures = 0;
  };
  struct Upstream;

  void Routes();
  void ProbeLoop();
  // The up instance of `role` with the fewest requests in flight (ties: the least used), whose
  // inflight count is then raised; null if none is up.
  Instance* Pick(const std::string& role) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkFailed(const std::string& url, const std::string& error);
  void Generate(const httplib::Request& req, httplib::Response& res);
  void Forward(const httplib::Request& req, httplib::Response& res);
  void CountResponse(int status);

  RouterOptions options_;
  HttpListener listener_;
  absl::Mutex mu_;
  std::map<std::string, Instance> instances_ ABSL_GUARDED_BY(mu_);  // by URL
  std::map<int, int64_t> responses_ ABSL_GUARDED_BY(mu_);
  int64_t upstream_failures_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread prober_;
};

// The instance side of the bootstrap: POSTs {role, url, kv_rank} to the router's /register now
// and every `interval` until destroyed, so that a router started later (or restarted) finds it.
class RouterRegistration {
 public:
  RouterRegistration(std::string router_url, std::string role, std::string url, int kv_rank,
                     absl::Duration interval = absl::Seconds(1));
  ~RouterRegistration();

 private:
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace serving

#endif  // SERVING_ROUTER_H_
