// The listening part the server's and the router's HTTP front ends share: an httplib::Server with
// a pool of connection threads, a body size limit and keep-alive, and binding, serving and
// stopping it (Stop works before Serve has begun, and from any thread).
#ifndef SERVING_HTTP_LISTENER_H_
#define SERVING_HTTP_LISTENER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace serving {

// Where and how an HTTP server (the server or the router) listens.
struct ListenOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                   // 0: any free port
  int threads = 128;                 // connections served at once
  int64_t max_body_bytes = 1 << 20;  // larger request bodies get 413
};

class HttpListener {
 public:
  explicit HttpListener(const ListenOptions& options);
  ~HttpListener();  // Stop

  // Where routes are added (before Serve).
  httplib::Server& server() { return *server_; }
  // Binds the socket. Returns the port (the chosen one for port 0); UNAVAILABLE naming host:port
  // if it cannot bind.
  absl::StatusOr<int> Bind();
  // Serves until Stop; call after Bind, typically on its own thread.
  void Serve();
  // Makes Serve return (waits for it if it has begun).
  void Stop();

 private:
  std::string host_;
  int port_;
  std::unique_ptr<httplib::Server> server_;
  std::atomic<bool> serve_entered_{false}, serve_done_{false}, stop_requested_{false};
};

}  // namespace serving

#endif  // SERVING_HTTP_LISTENER_H_
