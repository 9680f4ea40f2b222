// CommTask: a computation written as a C++20 coroutine that suspends where it needs the result of
// a non-blocking communication it has started, so that one thread can interleave two of them: while
// one micro-batch's all-to-all travels, the other micro-batch computes (DualPipe's overlapped
// forward+backward, without a second thread).
//
//   CommTask Work(comm::Communicator& ep, ...) {
//     CO_ASSIGN_OR_RETURN(std::unique_ptr<comm::Request> request, ep.StartAllToAll(...));
//     CO_RETURN_IF_ERROR(co_await AwaitRequest{request.get()});   // Wait()'s status
//     ...
//     co_return absl::OkStatus();
//   }
//   absl::Status status = RunAlone(Work(ep, ...));
//   std::pair<absl::Status, absl::Status> both = RunInterleaved(Work(a...), Work(b...));
//
// A task starts suspended and runs only inside RunAlone / RunInterleaved, on the calling thread.
// The request a task awaits is waited by the runner just before the task resumes, so the time in
// between (the other task's compute) overlaps the transfer.
#ifndef MODEL_INTERNAL_COMM_TASK_H_
#define MODEL_INTERNAL_COMM_TASK_H_

#include <coroutine>
#include <exception>
#include <utility>

#include "absl/status/status.h"
#include "comm/communicator.h"

namespace model::internal {

class CommTask {
 public:
  struct promise_type {
    comm::Request* awaited = nullptr;  // set while suspended in an AwaitRequest
    absl::Status awaited_status;       // what Wait returned, for the resumed AwaitRequest
    absl::Status result;               // co_return's

    CommTask get_return_object() {
      return CommTask(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_value(absl::Status status) { result = std::move(status); }
    void unhandled_exception() { std::terminate(); }
  };

  CommTask(CommTask&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  CommTask& operator=(CommTask&&) = delete;
  ~CommTask() {
    if (handle_) handle_.destroy();
  }

  bool done() const { return handle_.done(); }
  // Waits for the awaited request, if any, then runs the task to its next suspension or its end.
  void Step() {
    promise_type& promise = handle_.promise();
    if (promise.awaited != nullptr) {
      promise.awaited_status = promise.awaited->Wait();
      promise.awaited = nullptr;
    }
    handle_.resume();
  }
  // co_return's status. Precondition: done().
  const absl::Status& result() const { return handle_.promise().result; }

 private:
  explicit CommTask(std::coroutine_handle<promise_type> handle) : handle_(handle) {}
  std::coroutine_handle<promise_type> handle_;
};

// `co_await AwaitRequest{request}` suspends the task until the runner has waited for `request`
// (which must outlive the co_await), and gives Wait's status.
struct AwaitRequest {
  comm::Request* request;
  std::coroutine_handle<CommTask::promise_type> handle;

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<CommTask::promise_type> suspended) noexcept {
    handle = suspended;
    suspended.promise().awaited = request;
  }
  absl::Status await_resume() const { return handle.promise().awaited_status; }
};

// Runs `task` to its end, waiting for each request it awaits as soon as it awaits it.
inline absl::Status RunAlone(CommTask task) {
  while (!task.done()) task.Step();
  return task.result();
}

// Runs both tasks to their ends on the calling thread, taking turns at each await: a runs until
// it awaits a request, then b until it does, then a resumes once its request is complete, and so
// on. Returns {a's status, b's status}.
inline std::pair<absl::Status, absl::Status> RunInterleaved(CommTask a, CommTask b) {
  while (!a.done() || !b.done()) {
    if (!a.done()) a.Step();
    if (!b.done()) b.Step();
  }
  return {a.result(), b.result()};
}

}  // namespace model::internal

#endif  // MODEL_INTERNAL_COMM_TASK_H_
