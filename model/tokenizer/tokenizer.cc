#include "model/tokenizer/tokenizer.h"

#include <forward_list>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/tokenizer/internal/bpe.h"
#include "model/tokenizer/internal/byte_level.h"
#include "model/tokenizer/internal/normalizer.h"
#include "model/tokenizer/internal/pre_tokenizer.h"
#include "model/tokenizer/internal/token_matcher.h"
#include "model/tokenizer/read_file.h"
#include "model/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace tokenizer {
namespace {

using internal::TokenMatcher;
using json = nlohmann::json;

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

uint64_t Fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// A piece of text between added tokens (index < 0) or an added token (index into added_).
struct Segment {
  std::string_view text;
  int index;
};

// Splits `text` at the added tokens `matcher` finds, applying their single_word / lstrip / rstrip
// flags as Hugging Face's AddedVocabulary::find_matches does.
void SplitOnAddedTokens(std::string_view text, const TokenMatcher& matcher,
                        const std::vector<AddedToken>& added, std::vector<Segment>* out) {
  std::vector<TokenMatcher::Match> matches;
  matcher.FindAll(text, &matches);
  size_t done = 0;
  for (const TokenMatcher::Match& m : matches) {
    if (m.begin < done) continue;  // swallowed by the previous token's rstrip
    const AddedToken& token = added[m.index];
    size_t begin = m.begin;
    size_t end = m.end;
    if (token.single_word) {
      const bool word_before =
          begin > 0 && internal::IsWordCharacter(internal::LastCodePoint(text.substr(0, begin)));
      const bool word_after = end < text.size() &&
                              internal::IsWordCharacter(internal::FirstCodePoint(text.substr(end)));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      while (begin > done) {
        const char32_t c = internal::LastCodePoint(text.substr(0, begin));
        if (!internal::IsWhiteSpace(c)) break;
        size_t i = begin - 1;
        while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
        begin = std::max(i, done);
      }
    }
    if (token.rstrip) {
      while (end < text.size()) {
        size_t i = end;
        if (!internal::IsWhiteSpace(NextCodePoint(text, &i))) break;
        end = i;
      }
    }
    if (begin > done) out->push_back({text.substr(done, begin - done), -1});
    out->push_back({text.substr(begin, end - begin), m.index});
    done = end;
  }
  if (done < text.size()) out->push_back({text.substr(done), -1});
}

bool GetBool(const json& object, const char* key, bool fallback) {
  const auto it = object.find(key);
  return it != object.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

absl::Status ParsePostProcessor(const json& config, const std::string& path,
                                std::vector<int32_t>* prefix, std::vector<int32_t>* suffix) {
  if (config.is_null()) return absl::OkStatus();
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    return Invalid(path, "expected an object with a \"type\"");
  }
  const std::string type = config["type"];
  if (type == "ByteLevel") return absl::OkStatus();  // changes offsets only, never ids
  if (type == "Sequence") {
    const auto it = config.find("processors");
    if (it == config.end() || !it->is_array()) {
      return Invalid(path + ".processors", "expected an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const absl::Status status =
          ParsePostProcessor((*it)[i], absl::StrCat(path, ".processors[", i, "]"), prefix, suffix);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return Invalid(path, absl::StrCat("post-processor type \"", type,
                                      "\" is not supported (supported: ByteLevel, "
                                      "TemplateProcessing, Sequence)"));
  }
  if (!prefix->empty() || !suffix->empty()) {
    return Invalid(path, "a second TemplateProcessing is not supported");
  }
  const auto single = config.find("single");
  const auto specials = config.find("special_tokens");
  if (single == config.end() || !single->is_array()) {
    return Invalid(path + ".single", "expected an array");
  }
  bool seen_a = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const json& item = (*single)[i];
    const std::string where = absl::StrCat(path, ".single[", i, "]");
    if (item.contains("Sequence")) {
      if (item["Sequence"].value("id", std::string()) != "A" || seen_a) {
        return Invalid(where, "only one sequence, A, is supported in a single template");
      }
      seen_a = true;
      continue;
    }
    if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id")) {
      return Invalid(where, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
    const json& name = item["SpecialToken"]["id"];
    if (specials == config.end() || !specials->is_object() || !name.is_string() ||
        !specials->contains(name.get<std::string>())) {
      return Invalid(where, absl::StrCat("special token ", name.dump(), " is not in ", path,
                                         ".special_tokens"));
    }
    const json& ids = (*specials)[name.get<std::string>()].value("ids", json::array());
    for (const json& id : ids) {
      if (!id.is_number_integer()) return Invalid(where, "special token ids must be integers");
      (seen_a ? suffix : prefix)->push_back(id.get<int32_t>());
    }
  }
  if (!seen_a) return Invalid(path + ".single", "the template has no sequence A");
  return absl::OkStatus();
}

absl::Status CheckDecoder(const json& config, const std::string& path) {
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    return Invalid(path, "expected a ByteLevel decoder (byte-level BPE)");
  }
  const std::string type = config["type"];
  if (type == "ByteLevel") return absl::OkStatus();
  if (type == "Sequence") {
    const auto it = config.find("decoders");
    if (it == config.end() || !it->is_array() || it->empty()) {
      return Invalid(path + ".decoders", "expected a non-empty array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const absl::Status status = CheckDecoder((*it)[i], absl::StrCat(path, ".decoders[", i, "]"));
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  return Invalid(path, absl::StrCat("decoder type \"", type,
                                    "\" is not supported (supported: ByteLevel, Sequence)"));
}

// The content of a tokenizer_config.json token entry (a string or an AddedToken object).
std::optional<std::string> ConfigToken(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

namespace internal {

// The buffers one Encode or PreTokenize call reuses from earlier calls.
struct EncodeWorkspace {
  explicit EncodeWorkspace(const BpeModel& model) : bpe(model) {}
  BpeWorkspace bpe;
  SplitWorkspace split;
};

}  // namespace internal

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

std::unique_ptr<internal::EncodeWorkspace> Tokenizer::AcquireWorkspace() const {
  {
    absl::MutexLock lock(&workspaces_mu_);
    if (!free_workspaces_.empty()) {
      std::unique_ptr<internal::EncodeWorkspace> workspace = std::move(free_workspaces_.back());
      free_workspaces_.pop_back();
      return workspace;
    }
  }
  return std::make_unique<internal::EncodeWorkspace>(*model_);
}

void Tokenizer::ReleaseWorkspace(std::unique_ptr<internal::EncodeWorkspace> workspace) const {
  absl::MutexLock lock(&workspaces_mu_);
  free_workspaces_.push_back(std::move(workspace));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  absl::StatusOr<std::string> text = tokenizer::ReadFile(path);
  if (!text.ok()) return text.status();
  const size_t slash = path.rfind('/');
  const std::string config_path =
      (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) +
      "tokenizer_config.json";
  std::string config;
  if (std::ifstream(config_path).good()) {
    absl::StatusOr<std::string> read = tokenizer::ReadFile(config_path);
    if (read.ok()) config = *std::move(read);
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = FromJson(*text, config);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view text,
                                                               std::string_view config_text) {
  const json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InvalidArgumentError("not a JSON object (is this a tokenizer.json?)");
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->fingerprint_ = Fnv1a64(text);
  for (const char* key : {"truncation", "padding"}) {
    if (root.contains(key) && !root[key].is_null()) {
      return Invalid(key, "is not supported (must be null)");
    }
  }
  auto normalizer = internal::Normalizer::FromJson(root.value("normalizer", json()), "normalizer");
  if (!normalizer.ok()) return normalizer.status();
  t->normalizer_ = std::make_unique<internal::Normalizer>(*std::move(normalizer));
  auto pre_tokenizer =
      internal::PreTokenizer::FromJson(root.value("pre_tokenizer", json()), "pre_tokenizer");
  if (!pre_tokenizer.ok()) return pre_tokenizer.status();
  t->pre_tokenizer_ = *std::move(pre_tokenizer);
  if (!t->pre_tokenizer_->byte_level()) {
    return Invalid("pre_tokenizer",
                   "has no ByteLevel step: only byte-level BPE tokenizers are supported");
  }
  if (!root.contains("model")) return Invalid("model", "missing");
  auto model = internal::BpeModel::FromJson(root["model"], "model");
  if (!model.ok()) return model.status();
  t->model_ = std::make_unique<internal::BpeModel>(*std::move(model));
  absl::Status status = CheckDecoder(root.value("decoder", json()), "decoder");
  if (!status.ok()) return status;
  status = ParsePostProcessor(root.value("post_processor", json()), "post_processor",
                              &t->prefix_ids_, &t->suffix_ids_);
  if (!status.ok()) return status;

  // Added tokens.
  t->raw_matcher_ = std::make_unique<TokenMatcher>();
  t->normalized_matcher_ = std::make_unique<TokenMatcher>();
  const json added = root.value("added_tokens", json::array());
  if (!added.is_array()) return Invalid("added_tokens", "expected an array");
  int32_t limit = t->model_->id_limit();
  for (size_t i = 0; i < added.size(); ++i) {
    const json& entry = added[i];
    const std::string where = absl::StrCat("added_tokens[", i, "]");
    if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer() ||
        entry["id"].get<int64_t>() < 0 || entry["id"].get<int64_t>() > (1 << 30) ||
        !entry.contains("content") || !entry["content"].is_string() ||
        entry["content"].get<std::string>().empty()) {
      return Invalid(where, "expected a non-negative integer \"id\" and a non-empty \"content\"");
    }
    AddedToken token;
    token.id = entry["id"].get<int32_t>();
    token.content = entry["content"];
    if (!IsValidUtf8(token.content)) return Invalid(where, "content is not UTF-8");
    token.special = GetBool(entry, "special", false);
    token.lstrip = GetBool(entry, "lstrip", false);
    token.rstrip = GetBool(entry, "rstrip", false);
    token.single_word = GetBool(entry, "single_word", false);
    token.normalized = GetBool(entry, "normalized", !token.special);
    limit = std::max(limit, token.id + 1);
    t->added_.push_back(std::move(token));
  }
  t->vocab_size_ = limit;
  t->added_index_.assign(limit, -1);
  for (size_t i = 0; i < t->added_.size(); ++i) {
    const AddedToken& token = t->added_[i];
    t->added_index_[token.id] = static_cast<int32_t>(i);
    std::string bytes;
    if (!internal::ByteLevelToBytes(token.content, &bytes)) bytes = token.content;
    t->added_bytes_.push_back(bytes);
    if (token.normalized && !t->normalizer_->is_identity()) {
      auto normalized = t->normalizer_->Apply(token.content);
      if (!normalized.ok()) return normalized.status();
      t->normalized_matcher_->Add(*normalized, static_cast<int>(i));
    } else {
      t->raw_matcher_->Add(token.content, static_cast<int>(i));
    }
  }
  for (int32_t id : t->prefix_ids_) {
    if (!t->IsValidId(id)) return Invalid("post_processor", absl::StrCat("unknown id ", id));
  }
  for (int32_t id : t->suffix_ids_) {
    if (!t->IsValidId(id)) return Invalid("post_processor", absl::StrCat("unknown id ", id));
  }

  // BOS and EOS.
  json config;
  if (!config_text.empty()) {
    config = json::parse(config_text.begin(), config_text.end(), nullptr, false);
    if (config.is_discarded()) return Invalid("tokenizer_config.json", "is not valid JSON");
  }
  auto find = [&](const std::optional<std::string>& name) -> std::optional<int32_t> {
    if (!name.has_value()) return std::nullopt;
    return t->TokenToId(*name);
  };
  if (config.is_object()) {
    t->bos_id_ = find(ConfigToken(config, "bos_token"));
    t->eos_id_ = find(ConfigToken(config, "eos_token"));
  }
  if (!t->bos_id_.has_value() && !t->prefix_ids_.empty()) t->bos_id_ = t->prefix_ids_.front();
  for (const char* name :
       {"<｜begin▁of▁sentence｜>", "<|begin_of_text|>", "<s>", "<|endoftext|>"}) {
    if (!t->bos_id_.has_value()) t->bos_id_ = find(std::string(name));
  }
  for (const char* name : {"<｜end▁of▁sentence｜>", "<|end_of_text|>", "</s>", "<|endoftext|>"}) {
    if (!t->eos_id_.has_value()) t->eos_id_ = find(std::string(name));
  }
  return t;
}

bool Tokenizer::IsValidId(int32_t id) const {
  return id >= 0 && id < vocab_size_ && (added_index_[id] >= 0 || model_->has_id(id));
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < vocab_size_ && added_index_[id] >= 0 && added_[added_index_[id]].special;
}

const std::string& Tokenizer::TokenBytes(int32_t id) const {
  return added_index_[id] >= 0 ? added_bytes_[added_index_[id]] : model_->bytes(id);
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  for (const AddedToken& added : added_) {
    if (added.content == token) return added.id;
  }
  const int32_t id = model_->TokenToId(token);
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  if (!IsValidId(id)) return std::nullopt;
  if (added_index_[id] >= 0) return added_[added_index_[id]].content;
  return model_->token(id);
}

absl::Status Tokenizer::EncodeSection(std::string_view section,
                                      internal::EncodeWorkspace& workspace,
                                      std::vector<int32_t>* ids) const {
  std::string normalized_storage;
  std::string_view normalized = section;
  if (!normalizer_->is_identity()) {
    absl::StatusOr<std::string> n = normalizer_->Apply(section);
    if (!n.ok()) return n.status();
    normalized_storage = *std::move(n);
    normalized = normalized_storage;
  }
  std::vector<Segment> segments;
  if (normalized_matcher_->empty()) {
    segments.push_back({normalized, -1});
  } else {
    SplitOnAddedTokens(normalized, *normalized_matcher_, added_, &segments);
  }
  std::forward_list<std::string> arena;
  std::vector<std::string_view> pieces;
  for (const Segment& segment : segments) {
    if (segment.index >= 0) {
      ids->push_back(added_[segment.index].id);
      continue;
    }
    pieces.clear();
    absl::Status status = pre_tokenizer_->Split(segment.text, workspace.split, &arena, &pieces);
    if (!status.ok()) return status;
    for (std::string_view piece : pieces) {
      status = model_->Encode(piece, workspace.bpe, ids);
      if (!status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special_tokens) const {
  std::unique_ptr<internal::EncodeWorkspace> workspace = AcquireWorkspace();
  absl::StatusOr<std::vector<int32_t>> ids = Encode(text, add_special_tokens, *workspace);
  ReleaseWorkspace(std::move(workspace));
  return ids;
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special_tokens,
                                                       internal::EncodeWorkspace& workspace) const {
  size_t bad = 0;
  if (!IsValidUtf8(text, &bad)) {
    return absl::InvalidArgumentError(
        absl::StrCat("text is not valid UTF-8 (at byte offset ", bad, ")"));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids.insert(ids.end(), prefix_ids_.begin(), prefix_ids_.end());
  std::vector<Segment> segments;
  SplitOnAddedTokens(text, *raw_matcher_, added_, &segments);
  for (const Segment& segment : segments) {
    if (segment.index >= 0) {
      ids.push_back(added_[segment.index].id);
      continue;
    }
    const absl::Status status = EncodeSection(segment.text, workspace, &ids);
    if (!status.ok()) return status;
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

absl::Status Tokenizer::PreTokenize(std::string_view text, std::vector<std::string>* pieces) const {
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("text is not valid UTF-8");
  std::unique_ptr<internal::EncodeWorkspace> workspace = AcquireWorkspace();
  const absl::Status status = PreTokenize(text, *workspace, pieces);
  ReleaseWorkspace(std::move(workspace));
  return status;
}

absl::Status Tokenizer::PreTokenize(std::string_view text, internal::EncodeWorkspace& workspace,
                                    std::vector<std::string>* pieces) const {
  std::vector<Segment> segments;
  SplitOnAddedTokens(text, *raw_matcher_, added_, &segments);
  std::forward_list<std::string> arena;
  std::vector<std::string_view> views;
  for (const Segment& segment : segments) {
    if (segment.index >= 0) continue;
    std::string normalized(segment.text);
    if (!normalizer_->is_identity()) {
      absl::StatusOr<std::string> n = normalizer_->Apply(segment.text);
      if (!n.ok()) return n.status();
      normalized = *std::move(n);
    }
    std::vector<Segment> inner;
    SplitOnAddedTokens(normalized, *normalized_matcher_, added_, &inner);
    for (const Segment& part : inner) {
      if (part.index >= 0) continue;
      views.clear();
      const absl::Status status = pre_tokenizer_->Split(part.text, workspace.split, &arena, &views);
      if (!status.ok()) return status;
      for (std::string_view v : views) pieces->emplace_back(v);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids,
                                              bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (!IsValidId(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is out of range (vocabulary size ", vocab_size_, ")"));
    }
    if (skip_special_tokens && IsSpecial(id)) continue;
    bytes += TokenBytes(id);
  }
  std::string text;
  text.reserve(bytes.size());
  AppendLossyUtf8(bytes, &text);
  return text;
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

absl::StatusOr<std::string> IncrementalDecoder::Add(int32_t id) {
  if (!tokenizer_.IsValidId(id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token id ", id, " is out of range (vocabulary size ", tokenizer_.vocab_size(), ")"));
  }
  if (skip_special_tokens_ && tokenizer_.IsSpecial(id)) return std::string();
  pending_ += tokenizer_.TokenBytes(id);
  const size_t complete = CompletePrefixLength(pending_);
  std::string text;
  AppendLossyUtf8(std::string_view(pending_).substr(0, complete), &text);
  pending_.erase(0, complete);
  return text;
}

std::string IncrementalDecoder::Flush() {
  std::string text;
  AppendLossyUtf8(pending_, &text);
  pending_.clear();
  return text;
}

}  // namespace tokenizer
