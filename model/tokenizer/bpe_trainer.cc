#include "model/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/tokenizer/internal/byte_level.h"
#include "nlohmann/json.hpp"

namespace tokenizer {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr const char* kSpecialTokens[] = {
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<｜User｜>",
    "<｜Assistant｜>",
};
constexpr int kNumSpecial = 5;

// DeepSeek-V3's pre-tokenizer, exactly as in its tokenizer.json.
ordered_json DeepSeekV3PreTokenizer() {
  auto split = [](const char* regex) {
    return ordered_json{{"type", "Split"},
                        {"pattern", {{"Regex", regex}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
  };
  return ordered_json{
      {"type", "Sequence"},
      {"pretokenizers",
       {split("\\p{N}{1,3}"), split("[一-龥぀-ゟ゠-ヿ]+"),
        split(
            "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{"
            "L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
        ordered_json{{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", true},
                     {"use_regex", false}}}}};
}

// The bytes in the order of their byte-level characters (GPT-2's vocabulary order).
std::vector<int> BytesInAlphabetOrder() {
  std::vector<int> bytes(256);
  for (int b = 0; b < 256; ++b) bytes[b] = b;
  const auto& cp = internal::ByteToCodePoint();
  std::sort(bytes.begin(), bytes.end(), [&](int a, int b) { return cp[a] < cp[b]; });
  return bytes;
}

// Writes the tokenizer.json for `tokens` (raw bytes by id; the first kNumSpecial are the special
// tokens) and `merges` (pairs of ids, in rank order).
std::string WriteJson(const std::vector<std::string>& tokens,
                      const std::vector<std::pair<int32_t, int32_t>>& merges) {
  ordered_json added = ordered_json::array();
  for (int i = 0; i < kNumSpecial; ++i) {
    added.push_back(ordered_json{{"id", i},
                                 {"content", kSpecialTokens[i]},
                                 {"single_word", false},
                                 {"lstrip", false},
                                 {"rstrip", false},
                                 {"normalized", false},
                                 {"special", true}});
  }
  ordered_json vocab = ordered_json::object();
  std::vector<std::string> written(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    written[id] = id < kNumSpecial ? tokens[id] : internal::BytesToByteLevel(tokens[id]);
    vocab[written[id]] = id;
  }
  ordered_json merge_list = ordered_json::array();
  for (const auto& [left, right] : merges) {
    merge_list.push_back(absl::StrCat(written[left], " ", written[right]));
  }
  ordered_json root{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", ordered_json::array()}}},
      {"pre_tokenizer", DeepSeekV3PreTokenizer()},
      {"post_processor",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", false},
        {"use_regex", true}}},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", vocab},
        {"merges", merge_list}}},
  };
  return root.dump(1, ' ', /*ensure_ascii=*/false) + "\n";
}

std::vector<std::string> InitialTokens() {
  std::vector<std::string> tokens(kSpecialTokens, kSpecialTokens + kNumSpecial);
  for (int b : BytesInAlphabetOrder()) tokens.push_back(std::string(1, static_cast<char>(b)));
  return tokens;
}

uint64_t Key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

std::string BpeTrainer::SkeletonJson() { return WriteJson(InitialTokens(), {}); }

absl::StatusOr<std::unique_ptr<BpeTrainer>> BpeTrainer::Create(const BpeTrainerOptions& options) {
  if (options.vocab_size < kNumSpecial + 256 || options.vocab_size > (1 << 24)) {
    return absl::InvalidArgumentError(absl::StrCat("vocab_size must be in [", kNumSpecial + 256,
                                                   ", ", 1 << 24, "], got ", options.vocab_size));
  }
  if (options.min_frequency < 1) {
    return absl::InvalidArgumentError("min_frequency must be at least 1");
  }
  std::unique_ptr<BpeTrainer> trainer(new BpeTrainer());
  trainer->options_ = options;
  absl::StatusOr<std::unique_ptr<Tokenizer>> skeleton = Tokenizer::FromJson(SkeletonJson());
  if (!skeleton.ok()) return skeleton.status();
  trainer->skeleton_ = *std::move(skeleton);
  return trainer;
}

absl::Status BpeTrainer::AddText(std::string_view text) {
  std::vector<std::string> pieces;
  const absl::Status status = skeleton_->PreTokenize(text, &pieces);
  if (!status.ok()) return status;
  for (std::string& piece : pieces) {
    ++word_counts_[std::move(piece)];
    ++words_;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> BpeTrainer::Train(BpeTrainerStats* stats) {
  std::vector<std::string> tokens = InitialTokens();
  int32_t byte_id[256];
  for (size_t id = kNumSpecial; id < tokens.size(); ++id) {
    byte_id[static_cast<unsigned char>(tokens[id][0])] = static_cast<int32_t>(id);
  }
  // Words in sorted order, so that the result does not depend on hash-map iteration.
  std::vector<std::pair<std::string, int64_t>> sorted(word_counts_.begin(), word_counts_.end());
  std::sort(sorted.begin(), sorted.end());
  word_counts_.clear();
  std::vector<std::vector<int32_t>> words(sorted.size());
  std::vector<int64_t> counts(sorted.size());
  absl::flat_hash_map<uint64_t, int64_t> pair_count;
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> pair_words;
  for (size_t w = 0; w < sorted.size(); ++w) {
    counts[w] = sorted[w].second;
    for (char c : sorted[w].first) words[w].push_back(byte_id[static_cast<unsigned char>(c)]);
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t key = Key(words[w][i], words[w][i + 1]);
      pair_count[key] += counts[w];
      pair_words[key].push_back(static_cast<int32_t>(w));
    }
  }
  // Max-heap of (count, pair), ties to the smaller pair; entries are checked against pair_count
  // when popped (counts only fall without a push).
  using Entry = std::pair<int64_t, uint64_t>;
  auto less = [](const Entry& a, const Entry& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(less)> heap(less);
  std::vector<uint64_t> keys;
  keys.reserve(pair_count.size());
  for (const auto& [key, count] : pair_count) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  for (uint64_t key : keys) heap.push({pair_count[key], key});

  std::vector<std::pair<int32_t, int32_t>> merges;
  absl::flat_hash_map<std::string, int32_t> token_ids;
  for (size_t id = kNumSpecial; id < tokens.size(); ++id) {
    token_ids[tokens[id]] = static_cast<int32_t>(id);
  }
  absl::flat_hash_map<uint64_t, int64_t> delta;
  while (static_cast<int>(tokens.size()) < options_.vocab_size && !heap.empty()) {
    const auto [count, key] = heap.top();
    heap.pop();
    const auto current = pair_count.find(key);
    const int64_t now = current == pair_count.end() ? 0 : current->second;
    if (now != count) {
      if (now > 0 && now < count) heap.push({now, key});
      continue;
    }
    if (count < options_.min_frequency) break;
    const int32_t a = static_cast<int32_t>(key >> 32);
    const int32_t b = static_cast<int32_t>(key & 0xFFFFFFFFu);
    // Two merges can spell the same bytes ("ab"+"c", "a"+"bc"): the second reuses the token.
    std::string spelled = tokens[a] + tokens[b];
    const auto [existing, inserted] =
        token_ids.try_emplace(spelled, static_cast<int32_t>(tokens.size()));
    const int32_t merged = existing->second;
    if (inserted) tokens.push_back(std::move(spelled));
    merges.emplace_back(a, b);
    std::vector<int32_t> affected = std::move(pair_words[key]);
    pair_words.erase(key);
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    delta.clear();
    for (int32_t w : affected) {
      std::vector<int32_t>& word = words[w];
      bool found = false;
      for (size_t i = 0; i + 1 < word.size(); ++i) found |= word[i] == a && word[i + 1] == b;
      if (!found) continue;  // a stale entry: the pair left this word earlier
      for (size_t i = 0; i + 1 < word.size(); ++i) delta[Key(word[i], word[i + 1])] -= counts[w];
      std::vector<int32_t> next;
      next.reserve(word.size());
      for (size_t i = 0; i < word.size(); ++i) {
        if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(word[i]);
        }
      }
      word.swap(next);
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        const uint64_t k = Key(word[i], word[i + 1]);
        delta[k] += counts[w];
        if (word[i] == merged || word[i + 1] == merged) pair_words[k].push_back(w);
      }
    }
    std::vector<uint64_t> grown;
    for (const auto& [k, d] : delta) {
      if (d == 0) continue;
      int64_t& c = pair_count[k];
      c += d;
      if (d > 0) grown.push_back(k);
      if (c <= 0) pair_count.erase(k);
    }
    std::sort(grown.begin(), grown.end());
    for (uint64_t k : grown) heap.push({pair_count[k], k});
  }
  if (stats != nullptr) {
    stats->words = words_;
    stats->unique_words = static_cast<int64_t>(sorted.size());
    stats->merges = static_cast<int>(merges.size());
  }
  return WriteJson(tokens, merges);
}

}  // namespace tokenizer
