// A fixed-size pool of worker threads.
//
//   ThreadPool pool(4);
//   pool.Schedule([] { ... });                 // fire and forget; Wait() joins all scheduled work
//   pool.ParallelFor(0, n, [&](int64_t begin, int64_t end) { ... });   // blocks until done
//
// Thread-safe: any thread may Schedule. Tasks must not throw. The destructor finishes every
// scheduled task, then joins the workers.
#ifndef CORE_THREAD_POOL_H_
#define CORE_THREAD_POOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace core {

class ThreadPool {
 public:
  // CHECKs num_threads >= 1.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()); }

  // Queues `task` to run on some worker.
  void Schedule(std::function<void()> task);

  // Blocks until every task scheduled so far has finished.
  void Wait();

  // Splits [begin, end) into at most num_threads() contiguous chunks of near-equal size and runs
  // fn(chunk_begin, chunk_end) on them in parallel; returns when all are done. The calling thread
  // runs one chunk itself. Must not be called from inside a task of this pool.
  void ParallelFor(int64_t begin, int64_t end, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t pending_ ABSL_GUARDED_BY(mu_) = 0;  // queued + running
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace core

#endif  // CORE_THREAD_POOL_H_
