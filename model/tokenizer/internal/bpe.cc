#include "model/tokenizer/internal/bpe.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"
#include "model/tokenizer/internal/byte_level.h"

namespace tokenizer::internal {
namespace {

constexpr size_t kMaxCachedBytes = 64;
constexpr size_t kMaxCachedWords = 1 << 16;

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

bool IsNullOrEmpty(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  return it == config.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty());
}

}  // namespace

absl::StatusOr<BpeModel> BpeModel::FromJson(const nlohmann::json& config, const std::string& path) {
  if (!config.is_object() || config.value("type", std::string()) != "BPE") {
    const std::string type =
        config.is_object() && config.contains("type") ? config["type"].dump() : "missing";
    return Invalid(path + ".type",
                   absl::StrCat("model type ", type, " is not supported (supported: BPE)"));
  }
  const auto dropout = config.find("dropout");
  if (dropout != config.end() && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return Invalid(path + ".dropout", "BPE dropout is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!IsNullOrEmpty(config, key)) {
      return Invalid(absl::StrCat(path, ".", key), "is not supported by byte-level BPE");
    }
  }
  BpeModel model;
  model.ignore_merges_ = config.value("ignore_merges", false);
  model.byte_fallback_ = config.value("byte_fallback", false);
  const auto vocab = config.find("vocab");
  if (vocab == config.end() || !vocab->is_object()) {
    return Invalid(path + ".vocab", "expected an object of token: id");
  }
  int32_t limit = 0;
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 30)) {
      return Invalid(absl::StrCat(path, ".vocab[", nlohmann::json(token).dump(), "]"),
                     "expected a non-negative integer id");
    }
    limit = std::max(limit, static_cast<int32_t>(id.get<int64_t>()) + 1);
  }
  model.bytes_.resize(limit);
  model.tokens_.resize(limit);
  model.present_.assign(limit, false);
  model.token_to_id_.reserve(vocab->size());
  model.bytes_to_id_.reserve(vocab->size());
  std::string raw;
  for (const auto& [token, value] : vocab->items()) {
    const int32_t id = static_cast<int32_t>(value.get<int64_t>());
    model.tokens_[id] = token;
    model.present_[id] = true;
    model.token_to_id_[token] = id;
    if (ByteLevelToBytes(token, &raw)) {
      model.bytes_[id] = raw;
      model.bytes_to_id_.emplace(raw, id);
    } else {
      model.bytes_[id] = token;  // outside the alphabet (e.g. a special token): itself
    }
  }
  std::fill(std::begin(model.byte_ids_), std::end(model.byte_ids_), -1);
  for (int b = 0; b < 256; ++b) {
    const auto it = model.bytes_to_id_.find(std::string(1, static_cast<char>(b)));
    if (it != model.bytes_to_id_.end()) model.byte_ids_[b] = it->second;
  }
  if (!IsNullOrEmpty(config, "unk_token")) {
    const std::string unk = config["unk_token"];
    const auto it = model.token_to_id_.find(unk);
    if (it == model.token_to_id_.end()) {
      return Invalid(path + ".unk_token", absl::StrCat("\"", unk, "\" is not in the vocabulary"));
    }
    model.unk_id_ = it->second;
  }
  const auto merges = config.find("merges");
  if (merges == config.end() || !merges->is_array()) {
    return Invalid(path + ".merges", "expected an array");
  }
  model.merges_.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const nlohmann::json& merge = (*merges)[i];
    const std::string where = absl::StrCat(path, ".merges[", i, "]");
    std::string left, right;
    if (merge.is_string()) {
      const std::string text = merge;
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        return Invalid(where, absl::StrCat("expected \"left right\", got \"", text, "\""));
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      left = merge[0];
      right = merge[1];
    } else {
      return Invalid(where, "expected \"left right\" or [left, right]");
    }
    const int32_t l = model.TokenToId(left);
    const int32_t r = model.TokenToId(right);
    const int32_t m = model.TokenToId(left + right);
    if (l < 0 || r < 0 || m < 0) {
      return Invalid(where, absl::StrCat("\"", left, "\" + \"", right,
                                         "\": a part or the result is not in the vocabulary"));
    }
    model.merges_.try_emplace(PairKey(l, r), Merge{static_cast<int32_t>(i), m});
  }
  model.num_merges_ = static_cast<int32_t>(merges->size());
  return model;
}

int32_t BpeModel::TokenToId(std::string_view token) const {
  const auto it = token_to_id_.find(absl::string_view(token.data(), token.size()));
  return it == token_to_id_.end() ? -1 : it->second;
}

absl::Status BpeModel::AppendUnmergeable(unsigned char byte, std::vector<int32_t>* out) const {
  if (byte_fallback_) {
    // The byte-level character of this byte, as <0xXX> tokens of its UTF-8 bytes.
    const std::string ch = BytesToByteLevel(std::string(1, static_cast<char>(byte)));
    std::vector<int32_t> ids;
    for (unsigned char b : ch) {
      const int32_t id = TokenToId(absl::StrFormat("<0x%02X>", b));
      if (id < 0) break;
      ids.push_back(id);
    }
    if (ids.size() == ch.size()) {
      out->insert(out->end(), ids.begin(), ids.end());
      return absl::OkStatus();
    }
  }
  if (unk_id_ >= 0) {
    // Consecutive unknowns are not fused (fuse_unk is a no-op for byte-level vocabularies).
    out->push_back(unk_id_);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("byte 0x%02X has no token and the model has no unk_token", byte));
}

absl::Status BpeModel::Encode(std::string_view piece, BpeWorkspace& workspace,
                              std::vector<int32_t>* out) const {
  DSMOE_DCHECK(workspace.model_ == this, "the workspace was made for another model");
  if (piece.size() > kMaxCachedBytes) return MergeWord(piece, workspace, out);
  auto& words = workspace.words_;
  if (words.size() >= kMaxCachedWords) words.clear();
  const auto it = words.find(absl::string_view(piece.data(), piece.size()));
  if (it == words.end()) return MergeAndCache(piece, workspace, out);
  out->insert(out->end(), it->second.ids, it->second.ids + it->second.size);
  return absl::OkStatus();
}

absl::Status BpeModel::MergeAndCache(std::string_view piece, BpeWorkspace& workspace,
                                     std::vector<int32_t>* out) const {
  const size_t before = out->size();
  const absl::Status status = MergeWord(piece, workspace, out);
  const size_t added = out->size() - before;
  if (status.ok() && added <= BpeWorkspace::kMaxCachedIds) {
    BpeWorkspace::CachedIds& ids = workspace.words_[absl::string_view(piece.data(), piece.size())];
    ids.size = static_cast<int32_t>(added);
    std::copy(out->begin() + before, out->end(), ids.ids);
  }
  return status;
}

absl::Status BpeModel::MergeWord(std::string_view piece, BpeWorkspace& workspace,
                                 std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    const auto it = bytes_to_id_.find(absl::string_view(piece.data(), piece.size()));
    if (it != bytes_to_id_.end()) {
      out->push_back(it->second);
      return absl::OkStatus();
    }
  }
  const int n = static_cast<int>(piece.size());
  if (n == 1 && byte_ids_[static_cast<unsigned char>(piece[0])] >= 0) {
    out->push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
    return absl::OkStatus();
  }
  // Symbols as a doubly linked list over positions; a missing byte is -(byte + 1).
  std::vector<int32_t>& id = workspace.id_;
  std::vector<int32_t>& prev = workspace.prev_;
  std::vector<int32_t>& next = workspace.next_;
  std::vector<uint64_t>& heap = workspace.heap_;  // (rank << 32 | position), smallest first
  id.resize(n);
  prev.resize(n);
  next.resize(n);
  heap.clear();
  for (int i = 0; i < n; ++i) {
    const unsigned char b = static_cast<unsigned char>(piece[i]);
    id[i] = byte_ids_[b] >= 0 ? byte_ids_[b] : -(static_cast<int32_t>(b) + 1);
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  auto push_pair = [&](int i) {
    const int j = next[i];
    if (j < 0 || id[i] < 0 || id[j] < 0) return;
    const auto it = merges_.find(PairKey(id[i], id[j]));
    if (it == merges_.end()) return;
    heap.push_back((static_cast<uint64_t>(it->second.rank) << 32) | static_cast<uint32_t>(i));
    std::push_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    const uint64_t top = heap.back();
    heap.pop_back();
    const int i = static_cast<int>(top & 0xFFFFFFFFu);
    const int32_t rank = static_cast<int32_t>(top >> 32);
    // Stale entries: the left symbol was merged away or its pair changed since the push.
    if (id[i] == INT32_MIN || next[i] < 0) continue;
    const int j = next[i];
    const auto it = merges_.find(PairKey(id[i], id[j]));
    if (it == merges_.end() || it->second.rank != rank) continue;
    id[i] = it->second.merged;
    id[j] = INT32_MIN;  // dead
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    if (prev[i] >= 0) push_pair(prev[i]);
    push_pair(i);
  }
  for (int i = 0; i >= 0; i = next[i]) {
    if (id[i] >= 0) {
      out->push_back(id[i]);
    } else {
      const absl::Status status = AppendUnmergeable(static_cast<unsigned char>(-(id[i] + 1)), out);
      if (!status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace tokenizer::internal
