#include "core/trace.h"

#include <fstream>
#include <utility>

#include "core/check.h"
#include "nlohmann/json.hpp"

namespace core {

TraceRecorder::TraceRecorder() : start_(std::chrono::steady_clock::now()) {}

double TraceRecorder::NowMicros() const {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start_)
      .count();
}

void TraceRecorder::AddComplete(TraceEvent event) {
  DSMOE_CHECK(event.dur_us >= 0, "TraceRecorder: negative duration for ", event.name);
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(event));
}

void TraceRecorder::NameProcess(int pid, std::string name) {
  absl::MutexLock lock(&mu_);
  process_names_[pid] = std::move(name);
}

void TraceRecorder::NameThread(int pid, int tid, std::string name) {
  absl::MutexLock lock(&mu_);
  thread_names_[{pid, tid}] = std::move(name);
}

std::vector<TraceEvent> TraceRecorder::events() const {
  absl::MutexLock lock(&mu_);
  return events_;
}

std::string TraceRecorder::ToJson() const {
  absl::MutexLock lock(&mu_);
  nlohmann::json events = nlohmann::json::array();
  for (const auto& [pid, name] : process_names_) {
    events.push_back(
        {{"ph", "M"}, {"name", "process_name"}, {"pid", pid}, {"args", {{"name", name}}}});
    events.push_back({{"ph", "M"},
                      {"name", "process_sort_index"},
                      {"pid", pid},
                      {"args", {{"sort_index", pid}}}});
  }
  for (const auto& [key, name] : thread_names_) {
    const auto& [pid, tid] = key;
    events.push_back({{"ph", "M"},
                      {"name", "thread_name"},
                      {"pid", pid},
                      {"tid", tid},
                      {"args", {{"name", name}}}});
    events.push_back({{"ph", "M"},
                      {"name", "thread_sort_index"},
                      {"pid", pid},
                      {"tid", tid},
                      {"args", {{"sort_index", tid}}}});
  }
  for (const TraceEvent& event : events_) {
    nlohmann::json json = {{"ph", "X"},          {"name", event.name}, {"cat", event.category},
                           {"pid", event.pid},   {"tid", event.tid},   {"ts", event.ts_us},
                           {"dur", event.dur_us}};
    if (!event.args.empty()) json["args"] = event.args;
    events.push_back(std::move(json));
  }
  return nlohmann::json{{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}}.dump();
}

absl::Status TraceRecorder::WriteFile(const std::string& path) const {
  std::ofstream out(path);
  out << ToJson();
  out.close();
  if (!out) return absl::InternalError("cannot write trace file " + path);
  return absl::OkStatus();
}

ScopedTrace::ScopedTrace(TraceRecorder* recorder, std::string name, std::string category, int pid,
                         int tid)
    : recorder_(recorder) {
  if (recorder_ == nullptr) return;
  event_.name = std::move(name);
  event_.category = std::move(category);
  event_.pid = pid;
  event_.tid = tid;
  event_.ts_us = recorder_->NowMicros();
}

ScopedTrace::~ScopedTrace() {
  if (recorder_ == nullptr) return;
  event_.dur_us = recorder_->NowMicros() - event_.ts_us;
  recorder_->AddComplete(std::move(event_));
}

}  // namespace core
