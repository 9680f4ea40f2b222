// The router against fake instances (small HTTP servers, no model): registration checks, /health,
// 503 without instances, the least loaded choice of prefill instance named to the decode instance,
// streaming passed through, a failed prefill instance reported by the decode instance marked down.
#include "serving/router.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serving/kv_transfer.h"
// After Eigen (through kv_transfer.h): httplib.h brings resolv.h, whose _res macro breaks Eigen.
#include "httplib.h"

namespace serving {
namespace {

using Json = nlohmann::json;

// A fake instance on a free port: /health 200, and for generation requests (decode) an SSE stream
// whose one event carries the prefill instance the router named.
class FakeInstance {
 public:
  FakeInstance() {
    server_.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"status\": \"ok\"}", "application/json");
    });
    server_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      ++requests_;
      const std::string prefill = req.get_header_value(kPrefillHeader);
      if (fail_prefill_) {
        res.status = 503;
        res.set_header(kFailedInstanceHeader, prefill);
        res.set_content("{\"error\": {\"message\": \"prefill failed\"}}", "application/json");
        return;
      }
      res.set_content(absl::StrCat("data: {\"prefill\": \"", prefill, "\"}\n\ndata: [DONE]\n\n"),
                      "text/event-stream");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeInstance() {
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server_.stop();
    thread_.join();
  }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }
  int requests() const { return requests_.load(); }
  void set_fail_prefill(bool fail) { fail_prefill_ = fail; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> requests_{0};
  std::atomic<bool> fail_prefill_{false};
};

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RouterOptions options;
    options.listen.port = 0;
    options.probe_interval = probe_interval_;
    router_ = std::make_unique<Router>(options);
    port_ = *router_->Bind();
    thread_ = std::thread([this] { router_->Serve(); });
  }
  void TearDown() override {
    router_->Stop();
    thread_.join();
    router_.reset();
  }
  httplib::Result Get(const std::string& path) {
    httplib::Client c("127.0.0.1", port_);
    return c.Get(path.c_str());
  }
  httplib::Result Post(const std::string& path, const std::string& body) {
    httplib::Client c("127.0.0.1", port_);
    return c.Post(path.c_str(), body, "application/json");
  }
  // Waits until /health lists `n` instances up.
  void AwaitUp(int n) {
    for (int i = 0; i < 500; ++i) {
      httplib::Result r = Get("/health");
      int up = 0;
      const Json health = Json::parse(r->body);
      for (const Json& in : health["instances"]) up += in["state"] == "up";
      if (up == n) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "instances not up: " << Get("/health")->body;
  }

  absl::Duration probe_interval_ = absl::Milliseconds(20);
  std::unique_ptr<Router> router_;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(RouterTest, RegistrationIsChecked) {
  EXPECT_EQ(router_->Register("both", "http://127.0.0.1:1", -1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router_->Register("decode", "127.0.0.1:1", -1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Post("/register", "{\"role\": 3}")->status, 400);
  EXPECT_EQ(Post("/register", "not json")->status, 400);
}

TEST_F(RouterTest, WithoutInstancesEverythingIs503) {
  httplib::Result health = Get("/health");
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(Json::parse(health->body)["status"], "unavailable");
  httplib::Result r = Post("/v1/completions", "{\"prompt\": \"a\"}");
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("no decode instance is up"), std::string::npos);
  EXPECT_EQ(Get("/v1/models")->status, 503);
  // A registered instance that does not answer stays down.
  ASSERT_TRUE(router_->Register("decode", "http://127.0.0.1:1", -1).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Get("/health")->status, 503);
}

TEST_F(RouterTest, LeastLoadedPrefillIsNamedAndTheStreamPassesThrough) {
  FakeInstance decode, prefill_a, prefill_b;
  ASSERT_TRUE(router_->Register("decode", decode.url(), -1).ok());
  ASSERT_EQ(Post("/register", Json{{"role", "prefill"}, {"url", prefill_a.url()}}.dump())->status,
            200);
  ASSERT_TRUE(router_->Register("prefill", prefill_b.url(), -1).ok());
  AwaitUp(3);
  EXPECT_EQ(Get("/health")->status, 200);
  std::map<std::string, int> named;
  for (int i = 0; i < 6; ++i) {
    httplib::Result r = Post("/v1/completions", "{\"prompt\": \"a\", \"stream\": true}");
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/event-stream", 0), 0u);
    const Json event = Json::parse(r->body.substr(6, r->body.find("\n\n") - 6));
    ++named[event["prefill"].get<std::string>()];
    EXPECT_NE(r->body.find("data: [DONE]"), std::string::npos);
  }
  // One request at a time: equal in-flight counts, so the less used one each time.
  EXPECT_EQ(named[prefill_a.url()], 3);
  EXPECT_EQ(named[prefill_b.url()], 3);
  EXPECT_EQ(decode.requests(), 6);
}

TEST_F(RouterTest, APrefillFailureReportedByTheDecodeInstanceCounts) {
  FakeInstance decode, prefill;
  ASSERT_TRUE(router_->Register("decode", decode.url(), -1).ok());
  ASSERT_TRUE(router_->Register("prefill", prefill.url(), -1).ok());
  AwaitUp(2);
  decode.set_fail_prefill(true);
  httplib::Result r = Post("/v1/completions", "{\"prompt\": \"a\"}");
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("prefill failed"), std::string::npos);
  const Json health = Json::parse(Get("/health")->body);
  for (const Json& in : health["instances"]) {
    EXPECT_EQ(in["failures"], in["role"] == "prefill" ? 1 : 0) << in.dump();
  }
  const std::string metrics = Get("/metrics")->body;
  EXPECT_NE(metrics.find("dsmoe_router_upstream_failures_total 1"), std::string::npos) << metrics;
}

// Probes once a second: an instance that dies is still "up" for a while.
class SlowProbeRouterTest : public RouterTest {
 protected:
  void SetUp() override {
    probe_interval_ = absl::Seconds(1);
    RouterTest::SetUp();
  }
};

TEST_F(SlowProbeRouterTest, ARefusedConnectionGoesToAnotherDecodeInstance) {
  FakeInstance prefill;
  auto a = std::make_unique<FakeInstance>();
  auto b = std::make_unique<FakeInstance>();
  ASSERT_TRUE(router_->Register("prefill", prefill.url(), -1).ok());
  ASSERT_TRUE(router_->Register("decode", a->url(), -1).ok());
  ASSERT_TRUE(router_->Register("decode", b->url(), -1).ok());
  AwaitUp(3);
  // One request; the instance that did not get it (the less used, so the next choice) dies
  // before a probe can notice.
  ASSERT_EQ(Post("/v1/completions", "{}")->status, 200);
  std::unique_ptr<FakeInstance>& live = a->requests() == 1 ? a : b;
  std::unique_ptr<FakeInstance>& dying = a->requests() == 1 ? b : a;
  const std::string dead = dying->url();
  dying.reset();
  httplib::Result r = Post("/v1/completions", "{}");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(live->requests(), 2);
  const Json health = Json::parse(Get("/health")->body);
  for (const Json& in : health["instances"]) {
    if (in["url"] == dead) {
      EXPECT_EQ(in["state"], "down") << health.dump();
      EXPECT_EQ(in["failures"], 1) << health.dump();
    }
  }
}

}  // namespace
}  // namespace serving
