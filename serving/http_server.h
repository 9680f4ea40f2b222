// The OpenAI-compatible HTTP front end (cpp-httplib) over an Engine:
//   POST /v1/completions, POST /v1/chat/completions   (streaming with "stream": true: server-sent
//                                                      events ending with "data: [DONE]")
//   GET  /v1/models, /v1/models/{id}
//   GET  /health            503 {"status": "loading"} until SetEngine, then 200 {"status": "ok"}
//   GET  /metrics           Prometheus text: the engine's metrics and HTTP responses by status
//   POST /tokenize, /detokenize
// Errors are OpenAI's JSON shape with 400 (bad JSON or parameters, a prompt that fills the
// context), 404 (unknown route or model), 413 (body too large), 429 (queue full), 503 (loading).
// A streaming client that disconnects cancels its request, which frees its KV blocks.
//
// Prefill/decode disaggregation (serving/kv_transfer.h): every instance also answers
//   POST /internal/prefill, GET /internal/kv/{id}, POST /internal/kv_send/{id}
// (the prefill side of a KV transfer), and a generation request that carries the router's
// X-Dsmoe-Prefill header is served by fetching its prompt's KV from that prefill instance instead
// of prefilling here; a failed transfer answers 503 naming the prefill instance.
#ifndef SERVING_HTTP_SERVER_H_
#define SERVING_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "serving/engine.h"
#include "serving/http_listener.h"
#include "serving/kv_transfer.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace serving {

struct HttpOptions {
  ListenOptions listen;
  std::string role = "both";  // "both", "prefill" or "decode" (shown in /health)
  // A KV transfer's deadline (decode side), and how long exported pages wait (prefill side).
  absl::Duration kv_timeout = absl::Seconds(30);
  KvChannel* kv_channel = nullptr;  // MPI form: KV pages over this channel (not owned)
};

// The OpenAI-shaped answers to unknown routes (404), bodies over the limit (413) and exceptions
// (500) that the server and the router share.
void InstallApiErrorHandlers(httplib::Server& server);

class HttpServer {
 public:
  explicit HttpServer(const HttpOptions& options);
  ~HttpServer();

  // Binds the socket. Returns the port (the chosen one when options.port is 0); UNAVAILABLE
  // naming host:port if it cannot bind.
  absl::StatusOr<int> Bind();
  // Serves until Stop; call after Bind, typically on its own thread.
  void Serve();
  // Makes Serve return (waits for it if it has begun); safe before Serve and from any thread.
  void Stop();
  // Starts answering generation requests with `engine` (which must outlive the server, or until
  // Stop), under the model name `model_name`.
  void SetEngine(Engine* engine, const std::string& model_name);

 private:
  void Routes();
  void Completions(const httplib::Request& req, httplib::Response& res, bool chat);
  void Tokenize(const httplib::Request& req, httplib::Response& res);
  void Detokenize(const httplib::Request& req, httplib::Response& res);
  // The prefill side of a KV transfer (kv_transfer.h).
  void Prefill(const httplib::Request& req, httplib::Response& res);
  void SendKv(const httplib::Request& req, httplib::Response& res);
  void SendKvOverChannel(const httplib::Request& req, httplib::Response& res);
  // The engine once ready; else writes 503 into res and returns null.
  Engine* Ready(httplib::Response& res);
  void CountResponse(int status);

  HttpOptions options_;
  HttpListener listener_;
  std::atomic<Engine*> engine_{nullptr};
  std::string model_name_;
  std::atomic<int64_t> next_id_{0};
  absl::Mutex mu_;
  std::map<int, int64_t> responses_ ABSL_GUARDED_BY(mu_);  // by status code
  TransferStats transfers_;
  KvOutbox outbox_;
  const uint64_t transfer_prefix_;  // random: transfer ids of different instances differ
  std::atomic<int64_t> next_transfer_{0};
};

}  // namespace serving

#endif  // SERVING_HTTP_SERVER_H_
