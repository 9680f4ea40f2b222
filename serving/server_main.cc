// server: serves a checkpoint over the OpenAI API (see serving/README.md).
//
//   bazel run //serving:server -- --model=/tmp/ckpt --port=8000
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "comm/bootstrap.h"
#include "core/flags.h"
#include "core/status_macros.h"
#include "model/config.h"
#include "serving/engine.h"
#include "serving/http_server.h"
#include "serving/model_dir.h"
#include "serving/router.h"

ABSL_FLAG(std::string, model, "",
          "Checkpoint directory (model.textproto, tokenizer.json, *.safetensors and their index), "
          "or a training output directory whose newest checkpoints/step-N is served. Required.");
ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on (0.0.0.0 for all).");
ABSL_FLAG(int32_t, port, 8000, "Port to listen on; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "", "If set, the bound port is written to this file.");
ABSL_FLAG(std::string, served_model_name, "",
          "The model's name in the API; empty: the config's name.");
ABSL_FLAG(int64_t, kv_cache_mb, 64, "Memory of the paged KV cache, in MiB.");
ABSL_FLAG(int64_t, block_size, 16, "Token slots per KV cache block.");
ABSL_FLAG(int64_t, max_batch_tokens, 256,
          "Token budget of one engine step (decode tokens first, then prefill chunks).");
ABSL_FLAG(int64_t, max_running, 64, "Sequences in one step at most.");
ABSL_FLAG(int64_t, max_waiting, 256,
          "Queued requests at most; more are answered 429 until the queue drains.");
ABSL_FLAG(int32_t, threads, 0, "Compute threads; 0: one per core.");
ABSL_FLAG(int32_t, http_threads, 128, "Connections served at once.");
ABSL_FLAG(int64_t, max_body_bytes, 1 << 20, "Largest request body; larger ones get 413.");
ABSL_FLAG(int64_t, trace_steps, 0,
          "Record the first N engine steps that run the model as a Chrome trace (--trace_path).");
ABSL_FLAG(std::string, trace_path, "", "Where --trace_steps writes its trace (JSON).");
ABSL_FLAG(int32_t, ep, 1,
          "Expert-parallel ranks (threads) holding the MoE layers' physical experts.");
ABSL_FLAG(int32_t, num_redundant_experts, 0,
          "Physical experts per MoE layer beyond one per routed expert (EPLB's redundant "
          "experts); --ep must divide routed + redundant.");
ABSL_FLAG(int64_t, eplb_interval, 0,
          "Recompute the expert placement from live loads every N engine steps; 0: never.");
ABSL_FLAG(double, eplb_min_balancedness, 0,
          "Also rebalance when a layer's balancedness (mean / max rank load) drops below this.");
ABSL_FLAG(int32_t, eplb_window, 64, "Engine steps of expert loads a rebalance looks at.");
ABSL_FLAG(std::string, eplb_placement, "",
          "Initial placement: a JSON written by //eplb:rebalance (its phy2log), or 'trivial' "
          "(replica p holds expert p % experts). Default: balanced for uniform loads.");
ABSL_FLAG(std::string, eplb_loads_csv, "",
          "Initial placement computed from these expert loads (one MoE layer per line, as the "
          "training binary's expert-load CSV).");
ABSL_FLAG(std::string, role, "both",
          "both: prefill and decode here (one server); prefill or decode: one side of prefill/"
          "decode disaggregation, registering with --router; router: the front end that sends each "
          "request to a prefill and a decode instance (no --model).");
ABSL_FLAG(std::string, router, "",
          "prefill and decode roles: the router's address (http://host:port), where this "
          "instance registers every second.");
ABSL_FLAG(std::string, advertise_host, "",
          "The host the router and other instances reach this instance at; empty: --host.");
ABSL_FLAG(int64_t, kv_timeout_ms, 30000,
          "A KV transfer's deadline: a decode instance fails a request (503) whose prompt's KV has "
          "not arrived by then and frees its blocks; a prefill instance drops exported pages not "
          "fetched by then.");
ABSL_FLAG(
    std::string, layout, "",
    "Under mpirun: the job's instances, e.g. prefill:2,decode:4 (ranks 0-1 one prefill "
    "instance, ranks 2-5 one decode instance, each an EP group of its ranks). Rank 0 also runs "
    "the router on --port; KV pages move between the instances' first ranks over MPI.");
ABSL_FLAG(int64_t, instance_timeout_ms, 2000,
          "router: an instance whose /health has not answered 200 for this long is down.");
ABSL_FLAG(int64_t, upstream_timeout_ms, 60000,
          "router: the longest it waits for a decode instance's next bytes before answering 503.");
ABSL_FLAG(int64_t, debug_step_delay_ms, 0,
          "Tests: sleep this long in every engine step that runs the model.");
ABSL_FLAG(int64_t, debug_load_delay_ms, 0,
          "Tests: wait this long before loading the model (/health answers 503 meanwhile).");

namespace {

// SIGINT and SIGTERM write a byte to this pipe (all a handler may safely do; threads started by
// libraries before main may take the signal); WaitForSignal reads it and stops the server.
int g_signal_pipe[2] = {-1, -1};

void OnSignal(int) {
  const char byte = 1;
  (void)!write(g_signal_pipe[1], &byte, 1);
}

void WaitForSignal(const std::vector<std::function<void()>>& stops) {
  char byte = 0;
  while (read(g_signal_pipe[0], &byte, 1) < 0 && errno == EINTR) {
  }
  for (const auto& stop : stops) stop();
}

absl::Status WritePortFile(int port) {
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (port_file.empty()) return absl::OkStatus();
  std::ofstream out(port_file + ".tmp");
  out << port << "\n";
  out.close();
  if (!out || std::rename((port_file + ".tmp").c_str(), port_file.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot write --port_file=", port_file));
  }
  return absl::OkStatus();
}

// --host, --port, --http_threads and --max_body_bytes, checked; the server's and the router's.
absl::StatusOr<serving::ListenOptions> ListenOptionsFromFlags() {
  serving::ListenOptions listen;
  listen.host = absl::GetFlag(FLAGS_host);
  listen.port = absl::GetFlag(FLAGS_port);
  listen.threads = absl::GetFlag(FLAGS_http_threads);
  listen.max_body_bytes = absl::GetFlag(FLAGS_max_body_bytes);
  if (listen.port < 0 || listen.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--port=", listen.port, ": must be in [0, 65535]"));
  }
  if (listen.threads < 1 || listen.threads > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_threads=", listen.threads, ": must be in [1, 4096]"));
  }
  if (listen.max_body_bytes < 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_body_bytes=", listen.max_body_bytes, ": must be >= 1024"));
  }
  return listen;
}

absl::StatusOr<serving::RouterOptions> RouterOptionsFromFlags() {
  serving::RouterOptions options;
  ASSIGN_OR_RETURN(options.listen, ListenOptionsFromFlags());
  options.instance_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_instance_timeout_ms));
  options.upstream_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_upstream_timeout_ms));
  if (options.instance_timeout < absl::Milliseconds(100) ||
      options.upstream_timeout < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError(
        "--instance_timeout_ms and --upstream_timeout_ms must be >= 100");
  }
  return options;
}

absl::Status RunRouter() {
  ASSIGN_OR_RETURN(const serving::RouterOptions options, RouterOptionsFromFlags());
  serving::Router router(options);
  ASSIGN_OR_RETURN(const int bound, router.Bind());
  RETURN_IF_ERROR(WritePortFile(bound));
  std::fprintf(stderr, "router: listening on http://%s:%d\n", options.listen.host.c_str(), bound);
  std::thread signals(WaitForSignal,
                      std::vector<std::function<void()>>{[&router] { router.Stop(); }});
  router.Serve();
  OnSignal(0);
  signals.join();
  std::fprintf(stderr, "router: stopped\n");
  return absl::OkStatus();
}

// An EP rank other than an instance's first: holds its replicas' weights and computes their rows
// until the job ends. No HTTP server to stop here: SIGINT and SIGTERM end the process as by
// default.
absl::Status ServeExperts(const std::string& model_path, const serving::EpOptions& ep,
                          const std::string& banner) {
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  ASSIGN_OR_RETURN(serving::LoadedModel loaded, serving::LoadModelDir(model_path));
  const serving::IncrementalModel model(*loaded.model, nullptr);
  ASSIGN_OR_RETURN(std::unique_ptr<serving::ExpertParallel> worker,
                   serving::ExpertParallel::Create(model, ep));
  std::fprintf(stderr, "server: %s\n", banner.c_str());
  return worker->ServeWorker();
}

// One instance of an MPI job's --layout: its role and how many ranks form its EP group.
struct LayoutEntry {
  std::string role;
  int ranks = 0;
};

absl::StatusOr<std::vector<LayoutEntry>> ParseLayout(const std::string& text) {
  std::vector<LayoutEntry> out;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits(':', 1));
    LayoutEntry e{kv.first, 0};
    if ((e.role != "prefill" && e.role != "decode") || !absl::SimpleAtoi(kv.second, &e.ranks) ||
        e.ranks < 1 || e.ranks > 4096) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--layout=", text, ": want ROLE:RANKS,... with ROLE prefill or decode, RANKS >= 1"));
    }
    out.push_back(e);
  }
  const auto has = [&](const char* role) {
    return std::any_of(out.begin(), out.end(),
                       [&](const LayoutEntry& e) { return e.role == role; });
  };
  if (!has("prefill") || !has("decode") || out.front().role != "prefill") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--layout=", text, ": needs a prefill and a decode instance, a prefill one first"));
  }
  return out;
}

absl::Status Run() {
  std::string role = absl::GetFlag(FLAGS_role);
  if (role != "both" && role != "prefill" && role != "decode" && role != "router") {
    return absl::InvalidArgumentError(
        absl::StrCat("--role=", role, ": must be both, prefill, decode or router"));
  }
  ASSIGN_OR_RETURN(serving::ListenOptions listen, ListenOptionsFromFlags());
  const int64_t kv_timeout_ms = absl::GetFlag(FLAGS_kv_timeout_ms);
  if (kv_timeout_ms < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_timeout_ms=", kv_timeout_ms, ": must be >= 1"));
  }
  if (role == "router") return RunRouter();
  if (const std::string router_url = absl::GetFlag(FLAGS_router);
      !router_url.empty() && router_url.rfind("http://", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--router=", router_url, ": must be http://host:port"));
  }
  if (!absl::GetFlag(FLAGS_router).empty() && role == "both") {
    return absl::InvalidArgumentError("--router needs --role=prefill or --role=decode");
  }
  const std::string model_path = absl::GetFlag(FLAGS_model);
  if (model_path.empty()) return absl::InvalidArgumentError("--model is required (see --help)");
  serving::HttpOptions http;
  http.listen = std::move(listen);
  http.role = role;
  http.kv_timeout = absl::Milliseconds(kv_timeout_ms);
  serving::EngineOptions options;
  options.kv_cache_mb = absl::GetFlag(FLAGS_kv_cache_mb);
  options.block_size = absl::GetFlag(FLAGS_block_size);
  options.max_batch_tokens = absl::GetFlag(FLAGS_max_batch_tokens);
  options.max_running = absl::GetFlag(FLAGS_max_running);
  options.max_waiting = absl::GetFlag(FLAGS_max_waiting);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.trace_steps = absl::GetFlag(FLAGS_trace_steps);
  options.trace_path = absl::GetFlag(FLAGS_trace_path);
  options.debug_step_delay_ms = absl::GetFlag(FLAGS_debug_step_delay_ms);
  options.kv_import_timeout = absl::Milliseconds(kv_timeout_ms);
  options.ep.ep = absl::GetFlag(FLAGS_ep);
  options.ep.num_redundant_experts = absl::GetFlag(FLAGS_num_redundant_experts);
  options.ep.eplb_interval = absl::GetFlag(FLAGS_eplb_interval);
  options.ep.eplb_min_balancedness = absl::GetFlag(FLAGS_eplb_min_balancedness);
  options.ep.eplb_window = absl::GetFlag(FLAGS_eplb_window);
  options.ep.placement_path = absl::GetFlag(FLAGS_eplb_placement);
  options.ep.loads_csv_path = absl::GetFlag(FLAGS_eplb_loads_csv);
  RETURN_IF_ERROR(options.Validate());
  // Checks that need only the config, before listening.
  ASSIGN_OR_RETURN(const std::string dir, serving::ResolveModelDir(model_path));
  ASSIGN_OR_RETURN(const model::ModelConfig config, model::LoadConfig(dir + "/model.textproto"));
  const int replicas = config.moe().num_routed_experts() + options.ep.num_redundant_experts;
  if ((options.ep.ep > 1 || options.ep.num_redundant_experts > 0) &&
      (config.first_k_dense_layers() >= config.num_layers() || replicas % options.ep.ep != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--ep=", options.ep.ep, " --num_redundant_experts=", options.ep.num_redundant_experts,
        ": the ranks must divide the ", replicas, " physical experts of each MoE layer (",
        config.moe().num_routed_experts(), " routed + redundant)"));
  }

  // Under mpirun the EP ranks are the job's processes: rank 0 serves, the others hold experts.
  ASSIGN_OR_RETURN(const comm::LaunchEnvironment launch, comm::ReadLaunchEnvironment());
  std::unique_ptr<comm::Communicator> world, group;
  std::unique_ptr<serving::KvChannel> channel;
  std::unique_ptr<serving::Router> router;  // --layout: on rank 0
  std::string router_url = absl::GetFlag(FLAGS_router);
  const std::string layout_flag = absl::GetFlag(FLAGS_layout);
  if (!layout_flag.empty()) {
    // Each layout entry is an instance whose ranks form its EP group; the first rank of each
    // serves HTTP, and those first ranks share a communicator for the KV pages.
    ASSIGN_OR_RETURN(const std::vector<LayoutEntry> layout, ParseLayout(layout_flag));
    int total = 0;
    for (const LayoutEntry& e : layout) total += e.ranks;
    if (total != launch.size) {
      return absl::InvalidArgumentError(absl::StrCat("--layout=", layout_flag, " has ", total,
                                                     " ranks but mpirun started ", launch.size));
    }
    if (role != "both" || !router_url.empty() || options.ep.ep != 1) {
      return absl::InvalidArgumentError(
          "--layout sets each rank's role, router and EP group: no --role, --router or --ep");
    }
    int entry = 0, first = 0;
    while (launch.rank >= first + layout[entry].ranks) first += layout[entry++].ranks;
    role = layout[entry].role;
    http.role = role;
    options.ep.ep = layout[entry].ranks;
    if ((options.ep.ep > 1 || options.ep.num_redundant_experts > 0) &&
        (replicas % options.ep.ep != 0 || config.first_k_dense_layers() >= config.num_layers())) {
      return absl::InvalidArgumentError(absl::StrCat("--layout: an instance of ", options.ep.ep,
                                                     " ranks must divide the ", replicas,
                                                     " physical experts of each MoE layer"));
    }
    ASSIGN_OR_RETURN(world, comm::CreateWorldCommunicator(comm::Backend::kMpi));
    ASSIGN_OR_RETURN(group, world->Split(entry, world->rank()));
    const bool leader = group->rank() == 0;
    ASSIGN_OR_RETURN(std::unique_ptr<comm::Communicator> leaders,
                     world->Split(leader ? 0 : 1, world->rank()));
    if (group->size() > 1) options.ep.comm = group.get();
    // Rank 0 runs the router and tells every rank where it is.
    std::vector<uint8_t> url(256, 0);
    if (world->rank() == 0) {
      ASSIGN_OR_RETURN(serving::RouterOptions router_options, RouterOptionsFromFlags());
      router = std::make_unique<serving::Router>(router_options);
      ASSIGN_OR_RETURN(const int router_port, router->Bind());
      RETURN_IF_ERROR(WritePortFile(router_port));
      std::string host = absl::GetFlag(FLAGS_advertise_host);
      if (host.empty()) host = http.listen.host == "0.0.0.0" ? "127.0.0.1" : http.listen.host;
      const std::string u = absl::StrCat("http://", host, ":", router_port);
      std::copy_n(u.begin(), std::min<size_t>(u.size(), url.size() - 1), url.begin());
      std::fprintf(stderr, "router: listening on %s\n", u.c_str());
    }
    RETURN_IF_ERROR(world->Broadcast(comm::HostBuffer(absl::Span<uint8_t>(url)), 0));
    router_url = reinterpret_cast<const char*>(url.data());
    http.listen.port = 0;
    if (!leader) {
      return ServeExperts(model_path, options.ep,
                          absl::StrCat("rank ", world->rank(), " of ", world->size(),
                                       " serves the experts of a ", role, " instance"));
    }
    leaders->set_timeout(absl::Milliseconds(kv_timeout_ms));
    channel = std::make_unique<serving::KvChannel>(std::move(leaders));
    http.kv_channel = channel.get();
  } else if (launch.size > 1) {
    if (options.ep.ep != launch.size) {
      return absl::InvalidArgumentError(absl::StrCat("--ep=", options.ep.ep, " but mpirun started ",
                                                     launch.size, " processes: they must agree"));
    }
    ASSIGN_OR_RETURN(world, comm::CreateWorldCommunicator(comm::Backend::kMpi));
    options.ep.comm = world.get();
    if (world->rank() != 0) {
      return ServeExperts(
          model_path, options.ep,
          absl::StrCat("rank ", world->rank(), " of ", world->size(), " serves its experts"));
    }
  }

  // Listen first, so that /health answers 503 while the model loads.
  serving::HttpServer server(http);
  ASSIGN_OR_RETURN(const int bound, server.Bind());
  if (layout_flag.empty()) RETURN_IF_ERROR(WritePortFile(bound));
  std::fprintf(stderr, "server: %s listening on http://%s:%d\n", role.c_str(),
               http.listen.host.c_str(), bound);
  std::unique_ptr<serving::RouterRegistration> registration;
  if (!router_url.empty()) {
    std::string host = absl::GetFlag(FLAGS_advertise_host);
    if (host.empty()) host = http.listen.host == "0.0.0.0" ? "127.0.0.1" : http.listen.host;
    registration = std::make_unique<serving::RouterRegistration>(
        router_url, role, absl::StrCat("http://", host, ":", bound),
        channel != nullptr ? channel->rank() : -1);
  }
  std::vector<std::function<void()>> stops = {[&server] { server.Stop(); }};
  std::thread routing;
  if (router != nullptr) {
    stops.push_back([&router] { router->Stop(); });
    routing = std::thread([&router] { router->Serve(); });
  }
  std::thread signals(WaitForSignal, stops);
  std::thread serve([&server] { server.Serve(); });
  const auto stop_signals = [&signals] {
    OnSignal(0);  // wakes WaitForSignal if no signal came
    signals.join();
  };

  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::max<int64_t>(0, absl::GetFlag(FLAGS_debug_load_delay_ms))));
  absl::StatusOr<serving::LoadedModel> loaded = serving::LoadModelDir(model_path);
  absl::StatusOr<std::unique_ptr<serving::Engine>> engine =
      loaded.ok() ? serving::Engine::Create(&*loaded, options)
                  : absl::StatusOr<std::unique_ptr<serving::Engine>>(loaded.status());
  if (!engine.ok()) {
    stop_signals();
    serve.join();
    if (routing.joinable()) routing.join();
    return engine.status();
  }
  (*engine)->Start();
  std::string name = absl::GetFlag(FLAGS_served_model_name);
  if (name.empty()) name = loaded->config.name().empty() ? "model" : loaded->config.name();
  server.SetEngine(engine->get(), name);
  std::fprintf(
      stderr, "server: serving %s from %s (%d layers, vocab %d, context %d; KV cache %lld MiB)\n",
      name.c_str(), loaded->dir.c_str(), loaded->config.num_layers(), loaded->config.vocab_size(),
      loaded->config.max_seq_len(), static_cast<long long>(options.kv_cache_mb));
  serve.join();
  stop_signals();
  if (routing.joinable()) routing.join();
  registration.reset();
  std::fprintf(stderr, "server: stopped\n");
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  core::ParseFlagsOrExit(
      argc, argv,
      "Serves a checkpoint over the OpenAI API: POST /v1/completions, /v1/chat/completions\n"
      "(\"stream\": true for server-sent events), /tokenize, /detokenize; GET /v1/models,\n"
      "/health, /metrics (Prometheus). Continuous batching with chunked prefill and a paged\n"
      "KV cache; --ep ranks (threads, or the processes of mpirun -np EP) hold the experts as EPLB\n"
      "places them, rebalanced online (--eplb_interval, --eplb_min_balancedness). SIGINT or\n"
      "SIGTERM stops it.\n"
      "Usage: server --model=CHECKPOINT_DIR [--host=127.0.0.1 --port=8000 --kv_cache_mb=64\n"
      "       --max_batch_tokens=256 ...]");
  if (pipe(g_signal_pipe) != 0) {
    std::fprintf(stderr, "server: cannot create a pipe\n");
    return 1;
  }
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "server: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
