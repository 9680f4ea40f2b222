#include "serving/http_server.h"

#include <cstdlib>
#include <ctime>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "httplib.h"
#include "serving/openai_api.h"

namespace serving {
namespace {

void SendJson(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

void SendError(httplib::Response& res, const ApiError& error) {
  SendJson(res, error.status, error.ToJson());
}

// One choice of a generation request: a prompt's n-th sample.
struct Choice {
  int64_t index = 0;
  size_t prompt = 0;
  std::shared_ptr<RequestStream> stream;
  ChoiceOutput out;
  int64_t text_offset = 0;  // completions' logprobs: where the next token's text starts
  bool finished = false;
  absl::Status error;  // the engine's failure, when it aborted this choice
};

// The error a client gets for a choice the engine aborted because it failed.
ApiError EngineFailure(const absl::Status& error) {
  return {503, absl::StrCat("the engine failed: ", error.message()), "service_unavailable", "", ""};
}

struct Job {
  GenerationRequest request;
  std::string id;
  std::string model;
  int64_t created = 0;
  std::vector<Choice> choices;
  const tokenizer::Tokenizer* tokenizer = nullptr;

  void CancelAll() {
    for (Choice& c : choices) c.stream->Cancel();
  }
  bool chat() const { return request.endpoint == Endpoint::kChat; }
  Json Usage() const {
    int64_t prompt = 0, completion = 0;
    std::vector<bool> counted(request.prompts.size(), false);
    for (const Choice& c : choices) {
      if (!counted[c.prompt]) prompt += static_cast<int64_t>(request.prompts[c.prompt].size());
      counted[c.prompt] = true;
      completion += c.out.completion_tokens;
    }
    return {{"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"total_tokens", prompt + completion}};
  }
  std::string EchoText(const Choice& c) const {
    if (!request.echo) return "";
    if (c.prompt < request.prompt_texts.size() &&
        request.prompt_texts.size() == request.prompts.size()) {
      return request.prompt_texts[c.prompt];
    }
    return tokenizer->Decode(request.prompts[c.prompt]).value_or("");
  }
  Json Chunk(const Choice& c, const RequestOutput& out, int64_t offset) const {
    Json choice = {{"index", c.index}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    if (out.finish != FinishReason::kNone) choice["finish_reason"] = FinishReasonName(out.finish);
    if (request.params.logprobs >= 0 && !out.logprobs.empty()) {
      choice["logprobs"] = LogprobsJson(request.endpoint, out.logprobs, *tokenizer, offset);
    }
    if (chat()) {
      choice["delta"] = Json::object();
      if (!out.text.empty()) choice["delta"]["content"] = out.text;
    } else {
      choice["text"] = out.text;
    }
    Json chunk = {{"id", id},
                  {"object", chat() ? "chat.completion.chunk" : "text_completion"},
                  {"created", created},
                  {"model", model},
                  {"choices", Json::array({choice})}};
    if (request.include_usage) chunk["usage"] = nullptr;
    return chunk;
  }
  Json Response() const {
    Json choices_json = Json::array();
    for (const Choice& c : choices) {
      Json choice = {{"index", c.index},
                     {"logprobs", nullptr},
                     {"finish_reason", FinishReasonName(c.out.finish)}};
      if (request.params.logprobs >= 0) {
        choice["logprobs"] = LogprobsJson(request.endpoint, c.out.logprobs, *tokenizer,
                                          static_cast<int64_t>(EchoText(c).size()));
      }
      if (chat()) {
        choice["message"] = {{"role", "assistant"}, {"content", c.out.text}};
      } else {
        choice["text"] = EchoText(c) + c.out.text;
      }
      choices_json.push_back(choice);
    }
    return {{"id", id},
            {"object", chat() ? "chat.completion" : "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", choices_json},
            {"usage", Usage()}};
  }
};

void Accumulate(Choice* c, const RequestOutput& out) {
  c->out.text += out.text;
  c->out.token_ids.insert(c->out.token_ids.end(), out.token_ids.begin(), out.token_ids.end());
  c->out.logprobs.insert(c->out.logprobs.end(), out.logprobs.begin(), out.logprobs.end());
  c->out.prompt_tokens = out.prompt_tokens;
  c->out.completion_tokens = out.completion_tokens;
  if (out.finish != FinishReason::kNone) {
    c->out.finish = out.finish;
    c->finished = true;
    c->error = out.error;
  }
}

// Streams a job's events as server-sent events. False if the client went away (the job is then
// cancelled).
bool StreamJob(Job* job, httplib::DataSink& sink) {
  const auto send = [&](const Json& j) {
    const std::string event = absl::StrCat("data: ", Dump(j), "\n\n");
    return sink.write(event.data(), event.size());
  };
  for (Choice& c : job->choices) {
    RequestOutput first;
    if (job->chat()) {
      Json chunk = job->Chunk(c, first, 0);
      chunk["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
      if (!send(chunk)) return false;
    } else if (job->request.echo) {
      first.text = job->EchoText(c);
      c.text_offset = static_cast<int64_t>(first.text.size());
      if (!send(job->Chunk(c, first, 0))) return false;
    }
  }
  size_t unfinished = job->choices.size();
  while (unfinished > 0) {
    bool progressed = false;
    for (Choice& c : job->choices) {
      if (c.finished) continue;
      const absl::Duration wait = progressed ? absl::ZeroDuration() : absl::Milliseconds(50);
      while (std::optional<RequestOutput> out = c.stream->Next(wait)) {
        progressed = true;
        const int64_t offset = c.text_offset;
        for (const SampledToken& t : out->logprobs) {
          c.text_offset += static_cast<int64_t>(job->tokenizer->TokenBytes(t.id).size());
        }
        Accumulate(&c, *out);
        if (!c.error.ok()) {
          // The engine failed: an error event and no [DONE], as when an instance dies.
          if (!send(EngineFailure(c.error).ToJson())) return false;
          job->CancelAll();
          sink.done();
          return true;
        }
        if (!out->text.empty() || out->finish != FinishReason::kNone || !out->logprobs.empty()) {
          if (!send(job->Chunk(c, *out, offset))) return false;
        }
        if (c.finished) {
          --unfinished;
          break;
        }
      }
    }
    if (!progressed && !sink.is_writable()) return false;
  }
  if (job->request.include_usage) {
    Json usage = {{"id", job->id},
                  {"object", job->chat() ? "chat.completion.chunk" : "text_completion"},
                  {"created", job->created},
                  {"model", job->model},
                  {"choices", Json::array()},
                  {"usage", job->Usage()}};
    if (!send(usage)) return false;
  }
  const std::string done = "data: [DONE]\n\n";
  if (!sink.write(done.data(), done.size())) return false;
  sink.done();
  return true;
}

}  // namespace

HttpServer::HttpServer(const HttpOptions& options)
    : options_(options),
      listener_(options.listen),
      outbox_(options.kv_timeout),
      transfer_prefix_(std::random_device()() * 2654435761ull + std::random_device()()) {
  Routes();
}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<int> HttpServer::Bind() { return listener_.Bind(); }
void HttpServer::Serve() { listener_.Serve(); }
void HttpServer::Stop() { listener_.Stop(); }

void HttpServer::SetEngine(Engine* engine, const std::string& model_name) {
  model_name_ = model_name;
  engine_.store(engine);
}

Engine* HttpServer::Ready(httplib::Response& res) {
  Engine* engine = engine_.load();
  if (engine == nullptr) {
    SendError(res, {503, "the model is loading", "service_unavailable", "", ""});
  }
  return engine;
}

void HttpServer::CountResponse(int status) {
  absl::MutexLock lock(&mu_);
  ++responses_[status];
}

void InstallApiErrorHandlers(httplib::Server& s) {
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    e.status = res.status;
    if (res.status == 404) {
      e.type = "not_found_error";
      e.message = absl::StrCat("no route ", req.method, " ", req.path);
    } else if (res.status == 413) {
      e.message = "the request body is too large";
    } else {
      e.message = absl::StrCat("HTTP ", res.status);
    }
    SendError(res, e);
  });
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        SendError(res, {500, absl::StrCat("internal error: ", what), "internal_error", "", ""});
      });
}

void HttpServer::Routes() {
  httplib::Server& s = listener_.server();
  s.set_logger(
      [this](const httplib::Request&, const httplib::Response& res) { CountResponse(res.status); });
  InstallApiErrorHandlers(s);
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (engine_.load() == nullptr) {
      SendJson(res, 503, {{"status", "loading"}});
      return;
    }
    const absl::Status health = engine_.load()->Health();
    if (!health.ok()) {
      SendJson(res, 503, {{"status", "failed"}, {"error", std::string(health.message())}});
      return;
    }
    SendJson(res, 200, {{"status", "ok"}, {"role", options_.role}});
  });
  const auto model_json = [this](Engine* engine) {
    return Json{{"id", model_name_},
                {"object", "model"},
                {"created", 0},
                {"owned_by", "dsmoe"},
                {"max_model_len", engine->max_seq_len()}};
  };
  s.Get("/v1/models", [this, model_json](const httplib::Request&, httplib::Response& res) {
    Engine* engine = Ready(res);
    if (engine == nullptr) return;
    SendJson(res, 200, {{"object", "list"}, {"data", Json::array({model_json(engine)})}});
  });
  s.Get(R"(/v1/models/(.+))", [this, model_json](const httplib::Request& req,
                                                 httplib::Response& res) {
    Engine* engine = Ready(res);
    if (engine == nullptr) return;
    if (req.matches[1] != model_name_) {
      SendError(res, {404, absl::StrCat("The model '", req.matches[1].str(), "' does not exist"),
                      "not_found_error", "model", "model_not_found"});
      return;
    }
    SendJson(res, 200, model_json(engine));
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    Engine* engine = engine_.load();
    std::string text = engine != nullptr ? engine->Metrics() : "";
    std::vector<std::pair<std::string, double>> codes;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [code, count] : responses_) {
        codes.push_back({absl::StrCat("code=\"", code, "\""), static_cast<double>(count)});
      }
    }
    transfers_.set_outbox(outbox_.size());
    absl::StrAppend(&text, transfers_.Render(),
                    RenderSamples("dsmoe_model_loaded", "gauge", "1 once the model is loaded.",
                                  {{"", engine != nullptr ? 1.0 : 0.0}}),
                    RenderSamples("dsmoe_http_responses_total", "counter",
                                  "HTTP responses by status code.", codes));
    res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Completions(req, res, /*chat=*/false);
  });
  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Completions(req, res, /*chat=*/true);
  });
  s.Post("/tokenize",
         [this](const httplib::Request& req, httplib::Response& res) { Tokenize(req, res); });
  s.Post("/detokenize",
         [this](const httplib::Request& req, httplib::Response& res) { Detokenize(req, res); });
  s.Post("/internal/prefill",
         [this](const httplib::Request& req, httplib::Response& res) { Prefill(req, res); });
  s.Get(R"(/internal/kv/([^/]+))",
        [this](const httplib::Request& req, httplib::Response& res) { SendKv(req, res); });
  s.Post(
      R"(/internal/kv_send/([^/]+))",
      [this](const httplib::Request& req, httplib::Response& res) { SendKvOverChannel(req, res); });
}

void HttpServer::Completions(const httplib::Request& req, httplib::Response& res, bool chat) {
  Engine* engine = Ready(res);
  if (engine == nullptr) return;
  absl::StatusOr<GenerationRequest> parsed =
      ParseGenerationRequest(req.body, chat ? Endpoint::kChat : Endpoint::kCompletions,
                             engine->tokenizer(), engine->max_seq_len());
  if (!parsed.ok()) {
    ApiError e = ErrorFromStatus(parsed.status());
    // Parse errors start with the field's name in quotes.
    if (e.message.size() > 1 && e.message[0] == '\'') {
      e.param = e.message.substr(1, e.message.find('\'', 1) - 1);
    }
    SendError(res, e);
    return;
  }
  if (!parsed->model.empty() && parsed->model != model_name_) {
    SendError(res, {404, absl::StrCat("The model '", parsed->model, "' does not exist"),
                    "not_found_error", "model", "model_not_found"});
    return;
  }
  auto job = std::make_shared<Job>();
  job->request = *std::move(parsed);
  job->id = absl::StrFormat("%s-%016x", chat ? "chatcmpl" : "cmpl", next_id_.fetch_add(1));
  job->model = model_name_;
  job->created = static_cast<int64_t>(std::time(nullptr));
  job->tokenizer = &engine->tokenizer();
  const GenerationRequest& r = job->request;
  // Sent by the router: the prompt's KV comes from this prefill instance.
  std::optional<PrefillPeer> peer;
  if (req.has_header(kPrefillHeader)) {
    peer = PrefillPeer{req.get_header_value(kPrefillHeader), -1};
    if (req.has_header(kPrefillRankHeader)) {
      peer->kv_rank = std::atoi(req.get_header_value(kPrefillRankHeader).c_str());
    }
  }
  for (size_t p = 0; p < r.prompts.size(); ++p) {
    for (int64_t k = 0; k < r.n; ++k) {
      SamplingParams params = r.params;
      if (params.seed.has_value()) *params.seed += static_cast<uint64_t>(k);
      SubmitOptions submit;
      if (peer.has_value()) {
        // Both sides must draw the first token from the same generator.
        if (!params.seed.has_value()) params.seed = std::random_device()() * 2654435761ull;
        submit.import = std::make_shared<KvImport>();
      }
      const SamplingParams submitted = params;
      absl::StatusOr<std::shared_ptr<RequestStream>> stream =
          engine->Submit(r.prompts[p], std::move(params), submit);
      if (!stream.ok()) {
        job->CancelAll();
        ApiError e = ErrorFromStatus(stream.status());
        if (e.status == 400) e.param = r.prompts.size() > 1 || !chat ? "prompt" : "messages";
        SendError(res, e);
        return;
      }
      Choice c;
      c.index = static_cast<int64_t>(job->choices.size());
      c.prompt = p;
      c.stream = *std::move(stream);
      job->choices.push_back(std::move(c));
      if (submit.import != nullptr) {
        const std::string transfer_id =
            absl::StrFormat("%016x-%d", transfer_prefix_, next_transfer_.fetch_add(1));
        const absl::Status moved =
            FetchKv(*peer, transfer_id, r.prompts[p], submitted, submit.import.get(),
                    {options_.kv_timeout, options_.kv_channel, &transfers_});
        if (!moved.ok()) {
          job->CancelAll();
          res.set_header(kFailedInstanceHeader, peer->url);
          SendError(res, {503, std::string(moved.message()), "service_unavailable", "", ""});
          return;
        }
      }
    }
  }
  if (!r.stream) {
    // The body is sent chunked once every choice is done. While waiting, a space (JSON allows
    // white space before a value) goes out every second: writing to a client that went away
    // fails, which cancels the request.
    res.set_chunked_content_provider(
        "application/json",
        [job](size_t, httplib::DataSink& sink) {
          absl::Time last_write = absl::Now();
          for (Choice& c : job->choices) {
            while (!c.finished) {
              if (std::optional<RequestOutput> out = c.stream->Next(absl::Milliseconds(100))) {
                Accumulate(&c, *out);
              }
              if (!c.finished && absl::Now() - last_write > absl::Seconds(1)) {
                if (!sink.write(" ", 1)) {
                  job->CancelAll();
                  return false;
                }
                last_write = absl::Now();
              }
            }
          }
          // The status (200) went out with the first byte; an engine failure is an error body.
          Json response = job->Response();
          for (const Choice& c : job->choices) {
            if (!c.error.ok()) response = EngineFailure(c.error).ToJson();
          }
          const std::string body = Dump(response);
          if (!sink.write(body.data(), body.size())) return false;
          sink.done();
          return true;
        },
        [job](bool success) {
          if (!success) job->CancelAll();
        });
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [job](size_t, httplib::DataSink& sink) {
        if (!StreamJob(job.get(), sink)) {
          job->CancelAll();
          return false;
        }
        return true;
      },
      [job](bool success) {
        if (!success) job->CancelAll();
      });
}

void HttpServer::Prefill(const httplib::Request& req, httplib::Response& res) {
  Engine* engine = Ready(res);
  if (engine == nullptr) return;
  const Json j = Json::parse(req.body, nullptr, false);
  std::vector<int32_t> prompt;
  std::string id;
  try {
    prompt = j.at("prompt").get<std::vector<int32_t>>();
    id = j.at("transfer_id").get<std::string>();
  } catch (const Json::exception& e) {
    SendError(
        res, {400, absl::StrCat("a prefill request: ", e.what()), "invalid_request_error", "", ""});
    return;
  }
  absl::StatusOr<SamplingParams> params = SamplingParamsFromJson(j["params"]);
  absl::StatusOr<std::shared_ptr<RequestStream>> stream =
      params.ok() ? engine->Submit(std::move(prompt), *params, {.export_kv = true})
                  : absl::StatusOr<std::shared_ptr<RequestStream>>(params.status());
  if (!stream.ok()) {
    SendError(res, ErrorFromStatus(stream.status()));
    return;
  }
  const absl::Time deadline = absl::Now() + options_.kv_timeout;
  std::optional<RequestOutput> last;
  while (std::optional<RequestOutput> out = (*stream)->Next(deadline - absl::Now())) {
    last = std::move(out);
    if (last->finish != FinishReason::kNone) break;
  }
  if (!last.has_value() || last->kv == nullptr || last->token_ids.size() != 1) {
    (*stream)->Cancel();
    SendError(res, {503, "the prefill did not finish", "service_unavailable", "", ""});
    return;
  }
  SampledToken first = last->logprobs.empty() ? SampledToken{} : last->logprobs[0];
  first.id = last->token_ids[0];
  const KvPages& kv = *last->kv;
  const Json answer = {{"first", SampledTokenToJson(first)},
                       {"layers", kv.layers},
                       {"tokens", kv.tokens},
                       {"width", kv.width},
                       {"bytes", kv.bytes()},
                       {"checksum", absl::StrFormat("%016x", kv.Checksum())}};
  outbox_.Put(id, last->kv);
  SendJson(res, 200, answer);
}

void HttpServer::SendKv(const httplib::Request& req, httplib::Response& res) {
  absl::StatusOr<std::shared_ptr<const KvPages>> pages = outbox_.Take(req.matches[1]);
  if (!pages.ok()) {
    SendError(res, ErrorFromStatus(pages.status()));
    return;
  }
  const int64_t bytes = (*pages)->bytes();
  transfers_.Sent(bytes);
  std::shared_ptr<const KvPages> kv = *std::move(pages);
  res.set_content_provider(static_cast<size_t>(bytes), "application/octet-stream",
                           [kv](size_t offset, size_t length, httplib::DataSink& sink) {
                             const char* data = reinterpret_cast<const char*>(kv->data.data());
                             return sink.write(data + offset, std::min<size_t>(length, 1 << 20));
                           });
}

void HttpServer::SendKvOverChannel(const httplib::Request& req, httplib::Response& res) {
  if (options_.kv_channel == nullptr || !req.has_param("rank")) {
    SendError(res, {400, "no KV channel here, or no rank", "invalid_request_error", "", ""});
    return;
  }
  absl::StatusOr<std::shared_ptr<const KvPages>> pages = outbox_.Take(req.matches[1]);
  if (!pages.ok()) {
    SendError(res, ErrorFromStatus(pages.status()));
    return;
  }
  const absl::Status sent =
      options_.kv_channel->Send(std::atoi(req.get_param_value("rank").c_str()), **pages);
  if (!sent.ok()) {
    SendError(res, {503, std::string(sent.message()), "service_unavailable", "", ""});
    return;
  }
  transfers_.Sent((*pages)->bytes());
  SendJson(res, 200, {{"sent", (*pages)->bytes()}});
}

void HttpServer::Tokenize(const httplib::Request& req, httplib::Response& res) {
  Engine* engine = Ready(res);
  if (engine == nullptr) return;
  const Json j = Json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    SendError(res, {400, "the body must be a JSON object", "invalid_request_error", "", ""});
    return;
  }
  absl::StatusOr<std::vector<int32_t>> ids;
  if (j.contains("messages")) {
    absl::StatusOr<std::vector<tokenizer::ChatMessage>> messages = ParseMessages(j["messages"]);
    const bool generation =
        !j.contains("add_generation_prompt") || j["add_generation_prompt"] == true;
    ids = messages.ok()
              ? tokenizer::EncodeDeepSeekV3Chat(engine->tokenizer(), *messages, generation)
              : absl::StatusOr<std::vector<int32_t>>(messages.status());
  } else if (j.contains("prompt") && j["prompt"].is_string()) {
    const bool special = !j.contains("add_special_tokens") || j["add_special_tokens"] == true;
    ids = engine->tokenizer().Encode(j["prompt"].get<std::string>(), special);
  } else {
    ids = absl::InvalidArgumentError("'prompt' (a string) or 'messages' is required");
  }
  if (!ids.ok()) {
    SendError(res, ErrorFromStatus(absl::InvalidArgumentError(ids.status().message())));
    return;
  }
  SendJson(res, 200,
           {{"tokens", *ids}, {"count", ids->size()}, {"max_model_len", engine->max_seq_len()}});
}

void HttpServer::Detokenize(const httplib::Request& req, httplib::Response& res) {
  Engine* engine = Ready(res);
  if (engine == nullptr) return;
  const Json j = Json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("tokens") || !j["tokens"].is_array()) {
    SendError(res, {400, "'tokens' (an array of token ids) is required", "invalid_request_error",
                    "tokens", ""});
    return;
  }
  std::vector<int32_t> ids;
  for (const Json& x : j["tokens"]) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 ||
        x.get<int64_t>() > std::numeric_limits<int32_t>::max() ||
        !engine->tokenizer().IsValidId(static_cast<int32_t>(x.get<int64_t>()))) {
      SendError(res, {400, "'tokens' must hold token ids of the vocabulary",
                      "invalid_request_error", "tokens", ""});
      return;
    }
    ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
  }
  absl::StatusOr<std::string> text = engine->tokenizer().Decode(ids);
  if (!text.ok()) {
    SendError(res, ErrorFromStatus(absl::InvalidArgumentError(text.status().message())));
    return;
  }
  SendJson(res, 200, {{"prompt", *text}});
}

}  // namespace serving
