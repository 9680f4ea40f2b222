#include "core/thread_pool.h"

#include <algorithm>
#include <utility>

#include "core/check.h"

namespace core {

ThreadPool::ThreadPool(int num_threads) {
  DSMOE_CHECK(num_threads >= 1, "ThreadPool: num_threads = ", num_threads);
  workers_.reserve(num_threads);
  for (int i = 0; i < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::Schedule(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
  ++pending_;
}

void ThreadPool::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int64_t* pending) { return *pending == 0; }, &pending_));
}

void ThreadPool::WorkerLoop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadPool* pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mu_) {
            return pool->stopping_ || !pool->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping_ and nothing left to run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
    absl::MutexLock lock(&mu_);
    --pending_;
  }
}

void ThreadPool::ParallelFor(int64_t begin, int64_t end,
                             const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int64_t chunks = std::min<int64_t>(n, num_threads());
  const int64_t base = n / chunks;
  const int64_t extra = n % chunks;
  absl::Mutex done_mu;
  int64_t remaining = chunks - 1;
  int64_t chunk_begin = begin;
  int64_t first_end = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t chunk_end = chunk_begin + base + (c < extra ? 1 : 0);
    if (c == 0) {
      first_end = chunk_end;
    } else {
      Schedule([&fn, &done_mu, &remaining, chunk_begin, chunk_end] {
        fn(chunk_begin, chunk_end);
        absl::MutexLock lock(&done_mu);
        --remaining;
      });
    }
    chunk_begin = chunk_end;
  }
  fn(begin, first_end);
  absl::MutexLock lock(&done_mu);
  done_mu.Await(absl::Condition(
      +[](int64_t* left) { return *left == 0; }, &remaining));
}

}  // namespace core
