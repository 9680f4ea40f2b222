#include "serving/http_listener.h"

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace serving {

HttpListener::HttpListener(const ListenOptions& options)
    : host_(options.host), port_(options.port), server_(std::make_unique<httplib::Server>()) {
  server_->new_task_queue = [threads = options.threads] {
    return new httplib::ThreadPool(threads);
  };
  server_->set_payload_max_length(static_cast<size_t>(options.max_body_bytes));
  server_->set_keep_alive_timeout(5);
}

HttpListener::~HttpListener() { Stop(); }

absl::StatusOr<int> HttpListener::Bind() {
  if (port_ == 0) {
    const int port = server_->bind_to_any_port(host_);
    if (port <= 0) return absl::UnavailableError(absl::StrCat("cannot bind ", host_, ":0"));
    return port;
  }
  if (!server_->bind_to_port(host_, port_)) {
    return absl::UnavailableError(absl::StrCat("cannot bind ", host_, ":", port_,
                                               " (in use, or not an address of this machine)"));
  }
  return port_;
}

void HttpListener::Serve() {
  serve_entered_.store(true);
  if (!stop_requested_.load()) server_->listen_after_bind();
  serve_done_.store(true);
}

void HttpListener::Stop() {
  stop_requested_.store(true);
  // httplib's stop() does nothing before the listening loop runs: repeat until Serve returns.
  while (serve_entered_.load() && !serve_done_.load()) {
    server_->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace serving
