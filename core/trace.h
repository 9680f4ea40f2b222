// Chrome trace-event recorder: collects timed events and writes the JSON that chrome://tracing and
// Perfetto open ({"traceEvents": [...]}).
//
// Conventions: pid = rank, tid = thread or stream, ts and dur in microseconds. Tracks get names
// with NameProcess / NameThread (metadata events), and sort in pid/tid order.
//
//   TraceRecorder trace;
//   trace.NameProcess(/*pid=*/0, "rank 0");
//   { ScopedTrace span(&trace, "forward", "compute", /*pid=*/0, /*tid=*/0); ... }
//   RETURN_IF_ERROR(trace.WriteFile("/tmp/run.json"));
//
// Thread-safe: any thread may add events.
#ifndef CORE_TRACE_H_
#define CORE_TRACE_H_

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace core {

struct TraceEvent {
  std::string name;
  std::string category;
  int pid = 0;
  int tid = 0;
  double ts_us = 0;
  double dur_us = 0;
  std::map<std::string, std::string> args;
};

class TraceRecorder {
 public:
  // The recorder's clock starts at zero now.
  TraceRecorder();

  // Microseconds since construction, on a monotonic clock.
  double NowMicros() const;

  // Records a complete event ("ph": "X"). CHECKs dur_us >= 0.
  void AddComplete(TraceEvent event);
  void NameProcess(int pid, std::string name);
  void NameThread(int pid, int tid, std::string name);

  std::vector<TraceEvent> events() const;  // in insertion order
  std::string ToJson() const;
  // Writes ToJson() to `path`; INTERNAL naming the path if it cannot be written.
  absl::Status WriteFile(const std::string& path) const;

 private:
  const std::chrono::steady_clock::time_point start_;
  mutable absl::Mutex mu_;
  std::vector<TraceEvent> events_ ABSL_GUARDED_BY(mu_);
  std::map<int, std::string> process_names_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<int, int>, std::string> thread_names_ ABSL_GUARDED_BY(mu_);
};

// Records one complete event spanning this object's lifetime. A null recorder records nothing, so
// tracing can be switched off by passing nullptr.
class ScopedTrace {
 public:
  ScopedTrace(TraceRecorder* recorder, std::string name, std::string category, int pid, int tid);
  ~ScopedTrace();
  ScopedTrace(const ScopedTrace&) = delete;
  ScopedTrace& operator=(const ScopedTrace&) = delete;

 private:
  TraceRecorder* recorder_;
  TraceEvent event_;
};

}  // namespace core

#endif  // CORE_TRACE_H_
