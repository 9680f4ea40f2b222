#include "core/trace.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace core {
namespace {

TEST(TraceRecorder, WritesChromeTraceJson) {
  TraceRecorder trace;
  trace.NameProcess(1, "rank 1");
  trace.NameThread(1, 2, "comm stream");
  trace.AddComplete({"F0.3", "compute", 1, 0, 10.0, 5.5, {{"microbatch", "3"}}});
  { ScopedTrace span(&trace, "send", "comm", 1, 2); }

  const nlohmann::json json = nlohmann::json::parse(trace.ToJson());
  const auto& events = json.at("traceEvents");
  int complete = 0;
  bool named_process = false;
  bool named_thread = false;
  for (const auto& event : events) {
    if (event["ph"] == "X") {
      ++complete;
      EXPECT_EQ(event["pid"], 1);
      EXPECT_GE(event["dur"].get<double>(), 0.0);
      if (event["name"] == "F0.3") {
        EXPECT_EQ(event["ts"].get<double>(), 10.0);
        EXPECT_EQ(event["dur"].get<double>(), 5.5);
        EXPECT_EQ(event["args"]["microbatch"], "3");
      }
    } else if (event["name"] == "process_name") {
      named_process = event["args"]["name"] == "rank 1";
    } else if (event["name"] == "thread_name") {
      named_thread = event["tid"] == 2 && event["args"]["name"] == "comm stream";
    }
  }
  EXPECT_EQ(complete, 2);
  EXPECT_TRUE(named_process);
  EXPECT_TRUE(named_thread);
}

TEST(TraceRecorder, NullRecorderRecordsNothingAndClockIsMonotonic) {
  { ScopedTrace span(nullptr, "ignored", "x", 0, 0); }
  TraceRecorder trace;
  const double a = trace.NowMicros();
  const double b = trace.NowMicros();
  EXPECT_LE(a, b);
  EXPECT_TRUE(trace.events().empty());
}

TEST(TraceRecorder, WriteFileRoundTripsAndReportsBadPath) {
  TraceRecorder trace;
  trace.AddComplete({"op", "c", 0, 0, 1, 2, {}});
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/trace.json";
  ASSERT_TRUE(trace.WriteFile(path).ok());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), trace.ToJson());
  EXPECT_EQ(trace.WriteFile("/nonexistent-dir/x.json").code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace core
