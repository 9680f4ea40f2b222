#include "serving/expert_parallel.h"

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "comm/local_communicator.h"
#include "gtest/gtest.h"
#include "model/config.h"
#include "model/init.h"
#include "serving/engine.h"
#include "serving/test_models.h"

namespace serving {
namespace {

LoadedModel TinyModel() {
  return SeededTinyModel("serving/testdata/tiny_cpu.textproto", 64, /*seed=*/9);
}

std::vector<std::vector<int32_t>> RunRequests(LoadedModel* m, const EngineOptions& options,
                                              EpStats* stats = nullptr,
                                              bool* replicas_ok = nullptr) {
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(m, options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 16; ++i) {
    SamplingParams p;
    p.temperature = 0;
    p.max_tokens = 20;
    p.ignore_eos = true;
    std::vector<int32_t> prompt;
    model::Rng rng(500 + i);
    for (int k = 0; k < 3 + i; ++k) prompt.push_back(static_cast<int32_t>(rng.Next() % 600));
    streams.push_back(*(*engine)->Submit(prompt, p));
  }
  std::vector<std::vector<int32_t>> out(streams.size());
  size_t done = 0;
  while (done < streams.size()) {
    EXPECT_TRUE(*(*engine)->Step());
    for (size_t i = 0; i < streams.size(); ++i) {
      while (std::optional<RequestOutput> o = streams[i]->Next(absl::ZeroDuration())) {
        out[i].insert(out[i].end(), o->token_ids.begin(), o->token_ids.end());
        done += o->finish != FinishReason::kNone;
      }
    }
  }
  if (ExpertParallel* ep = (*engine)->expert_parallel()) {
    ep->FinishMoves();
    if (stats != nullptr) *stats = ep->Stats();
    if (replicas_ok != nullptr) *replicas_ok = ep->ReplicasMatchExperts();
  }
  return out;
}

// Outputs do not depend on expert parallelism, redundant experts, or rebalancing every 2 steps;
// the weights moved equal the source bytes.
TEST(ExpertParallelTest, RebalancingChangesNoOutput) {
  LoadedModel m = TinyModel();
  EngineOptions plain;
  plain.threads = 2;
  plain.max_batch_tokens = 32;  // several prefill steps, so that rebalances land mid-run
  const std::vector<std::vector<int32_t>> want = RunRequests(&m, plain);
  EngineOptions static_ep = plain;
  static_ep.ep = {.ep = 4, .num_redundant_experts = 4};
  EXPECT_EQ(RunRequests(&m, static_ep), want);
  EngineOptions moving = static_ep;
  moving.ep.eplb_interval = 2;
  moving.ep.eplb_window = 4;
  EpStats stats;
  bool replicas_ok = false;
  EXPECT_EQ(RunRequests(&m, moving, &stats, &replicas_ok), want);
  EXPECT_GT(stats.rebalances, 2);
  EXPECT_GT(stats.layers_moved, 0);
  EXPECT_GT(stats.experts_copied, 0);
  // 3 matrices of 64 x 96 floats per expert.
  EXPECT_EQ(stats.bytes_moved, stats.experts_copied * 3 * 64 * 96 * 4);
  EXPECT_TRUE(replicas_ok);
  int64_t tokens = 0;
  for (int64_t t : stats.rank_tokens) {
    EXPECT_GT(t, 0);
    tokens += t;
  }
  EXPECT_GT(tokens, 0);
  ASSERT_EQ(stats.balancedness.size(), 3u);  // three MoE layers
  for (double b : stats.balancedness) EXPECT_TRUE(b > 0 && b <= 1) << b;
  ASSERT_EQ(stats.observed_balancedness.size(), 3u);
  for (double b : stats.observed_balancedness) EXPECT_TRUE(b > 0 && b <= 1) << b;
  // A low-balancedness trigger rebalances too.
  EngineOptions triggered = static_ep;
  triggered.ep.eplb_min_balancedness = 0.99;
  EXPECT_EQ(RunRequests(&m, triggered, &stats, &replicas_ok), want);
  EXPECT_GT(stats.rebalances, 0);
  EXPECT_TRUE(replicas_ok);
}

// Ranks as processes (here comm's local backend, as under mpirun with the mpi backend): the leader
// sends rows to three workers, rebalancing moves replicas between them, and outputs do not change.
TEST(ExpertParallelTest, RanksOverACommunicator) {
  LoadedModel m = TinyModel();
  EngineOptions plain;
  plain.threads = 2;
  plain.max_batch_tokens = 32;
  const std::vector<std::vector<int32_t>> want = RunRequests(&m, plain);
  core::ThreadPool pool(1);
  const IncrementalModel model(*m.model, &pool);
  std::vector<std::unique_ptr<comm::Communicator>> group = comm::CreateLocalGroup(4);
  const EpOptions ep = {.ep = 4, .num_redundant_experts = 4, .eplb_interval = 2, .eplb_window = 4};
  std::vector<absl::Status> worker_status(4);
  std::vector<std::thread> workers;
  for (int r = 1; r < 4; ++r) {
    workers.emplace_back([&, r] {
      EpOptions mine = ep;
      mine.comm = group[r].get();
      absl::StatusOr<std::unique_ptr<ExpertParallel>> worker = ExpertParallel::Create(model, mine);
      worker_status[r] = worker.ok() ? (*worker)->ServeWorker() : worker.status();
    });
  }
  EngineOptions leader = plain;
  leader.ep = ep;
  leader.ep.comm = group[0].get();
  EpStats stats;
  bool replicas_ok = false;
  EXPECT_EQ(RunRequests(&m, leader, &stats, &replicas_ok), want);  // the leader stops the workers
  for (std::thread& t : workers) t.join();
  for (int r = 1; r < 4; ++r) EXPECT_TRUE(worker_status[r].ok()) << worker_status[r];
  EXPECT_GT(stats.rebalances, 1);
  EXPECT_GT(stats.layers_moved, 0);
  EXPECT_GT(stats.bytes_moved, 0);
  EXPECT_TRUE(replicas_ok);
  for (int64_t t : stats.rank_tokens) EXPECT_GT(t, 0);
}

// A rank that never answers fails the step after the communicator's timeout: the engine aborts
// its requests with that error, reports it as its health, and refuses new requests.
TEST(ExpertParallelTest, ALostRankFailsTheEngineCleanly) {
  LoadedModel m = TinyModel();
  std::vector<std::unique_ptr<comm::Communicator>> group =
      comm::CreateLocalGroup(2, comm::CommOptions{.timeout = absl::Seconds(1)});
  EngineOptions options;
  options.threads = 1;
  options.ep = {.ep = 2, .num_redundant_experts = 2};
  options.ep.comm = group[0].get();  // rank 1 never serves
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(&m, options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  (*engine)->Start();
  SamplingParams p;
  p.max_tokens = 4;
  std::shared_ptr<RequestStream> stream = *(*engine)->Submit({1, 2, 3}, p);
  std::optional<RequestOutput> last;
  while (std::optional<RequestOutput> out = stream->Next(absl::Seconds(30))) last = out;
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->finish, FinishReason::kAbort);
  EXPECT_TRUE(absl::IsDeadlineExceeded(last->error)) << last->error;  // the step's error
  EXPECT_FALSE((*engine)->Health().ok());
  EXPECT_EQ((*engine)->Submit({1, 2, 3}, p).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*engine)->Stats().kv_blocks_used, 0);
}

TEST(ExpertParallelTest, InitialPlacementFromJsonAndCsv) {
  LoadedModel m = TinyModel();
  core::ThreadPool pool(1);
  IncrementalModel model(*m.model, &pool);
  const std::string dir = ::testing::TempDir();
  {
    std::ofstream csv(dir + "/loads.csv");
    csv << "100,1,1,1,1,1,1,1\n1,1,1,1,1,1,1,100\n5,5,5,5,5,5,5,5\n";
  }
  absl::StatusOr<std::unique_ptr<ExpertParallel>> from_csv = ExpertParallel::Create(
      model, {.ep = 2, .num_redundant_experts = 2, .loads_csv_path = dir + "/loads.csv"});
  ASSERT_TRUE(from_csv.ok()) << from_csv.status();
  const eplb::Placement p = (*from_csv)->CurrentPlacement();
  EXPECT_EQ(p.logcnt(0, 0), 2);  // the hot expert got a redundant replica
  EXPECT_EQ(p.logcnt(1, 7), 2);
  std::string json = "{\"phy2log\": [";
  for (int l = 0; l < 3; ++l) {
    json += l > 0 ? ",[" : "[";
    for (int r = 0; r < 10; ++r) json += (r > 0 ? "," : "") + std::to_string(p.phy2log(l, r));
    json += "]";
  }
  json += "]}";
  {
    std::ofstream out(dir + "/placement.json");
    out << json;
  }
  absl::StatusOr<std::unique_ptr<ExpertParallel>> from_json = ExpertParallel::Create(
      model, {.ep = 2, .num_redundant_experts = 2, .placement_path = dir + "/placement.json"});
  ASSERT_TRUE(from_json.ok()) << from_json.status();
  EXPECT_EQ((*from_json)->CurrentPlacement(), p);
  EXPECT_TRUE((*from_json)->ReplicasMatchExperts());
  absl::StatusOr<std::unique_ptr<ExpertParallel>> trivial = ExpertParallel::Create(
      model, {.ep = 2, .num_redundant_experts = 2, .placement_path = "trivial"});
  ASSERT_TRUE(trivial.ok()) << trivial.status();
  for (int r = 0; r < 10; ++r) EXPECT_EQ((*trivial)->CurrentPlacement().phy2log(1, r), r % 8);
  EXPECT_TRUE((*trivial)->ReplicasMatchExperts());
  // Errors name the flag.
  const auto message = [&](const EpOptions& o) {
    absl::StatusOr<std::unique_ptr<ExpertParallel>> ep = ExpertParallel::Create(model, o);
    EXPECT_EQ(ep.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(ep.status().message());
  };
  EXPECT_NE(message({.ep = 3}).find("--ep=3"), std::string::npos);
  EXPECT_NE(message({.ep = 2, .eplb_min_balancedness = 2}).find("--eplb_min_balancedness"),
            std::string::npos);
  {
    std::ofstream out(dir + "/bad.json");
    out << "{\"phy2log\": [[0, 1]]}";
  }
  EXPECT_NE(message({.ep = 2, .placement_path = dir + "/bad.json"}).find("--eplb_placement"),
            std::string::npos);
}

}  // namespace
}  // namespace serving
