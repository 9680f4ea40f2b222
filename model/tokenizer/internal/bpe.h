// The tokenizer.json `model` of type BPE, kept in raw bytes: each vocabulary entry (written in
// the byte-level alphabet in the file) is stored as the bytes it stands for, and merges are a
// table from a pair of ids to (rank, merged id). Encoding a piece starts from its single bytes and
// repeatedly merges the adjacent pair of lowest rank, leftmost first (Hugging Face's order).
// Encoding caches recent words (up to 64 bytes) and their ids, as Hugging Face's BPE does, in a
// BpeWorkspace the caller owns (one per thread of work). Supported options: `ignore_merges`,
// `byte_fallback`, `unk_token`; `dropout`, `continuing_subword_prefix` and `end_of_word_suffix`
// must be null or empty.
#ifndef MODEL_TOKENIZER_INTERNAL_BPE_H_
#define MODEL_TOKENIZER_INTERNAL_BPE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tokenizer::internal {

class BpeModel;

// What BpeModel::Encode reuses from call to call: the word cache (at most 65536 words, emptied
// when full) and the merge scratch. Made for one model, whose ids the cache holds, and used by one
// thread at a time. Its memory is freed with it.
class BpeWorkspace {
 public:
  // `model` must outlive the workspace.
  explicit BpeWorkspace(const BpeModel& model) : model_(&model) {}
  BpeWorkspace(const BpeWorkspace&) = delete;
  BpeWorkspace& operator=(const BpeWorkspace&) = delete;

 private:
  friend class BpeModel;
  static constexpr int kMaxCachedIds = 7;
  // Values are stored inline (no pointer to chase): most words are a few tokens.
  struct CachedIds {
    int32_t size;
    int32_t ids[kMaxCachedIds];
  };

  const BpeModel* model_;
  absl::flat_hash_map<std::string, CachedIds> words_;
  // MergeWord's symbols as a doubly linked list over positions, and its heap of candidate pairs.
  std::vector<int32_t> id_, prev_, next_;
  std::vector<uint64_t> heap_;
};

class BpeModel {
 public:
  // Parses the JSON at `path` ("model"). InvalidArgument naming the path for a type other than
  // BPE, an unsupported option, a vocabulary entry outside the byte-level alphabet that a merge
  // uses, or a merge whose parts or result are not in the vocabulary.
  static absl::StatusOr<BpeModel> FromJson(const nlohmann::json& config, const std::string& path);

  // Appends the ids of `piece` (raw bytes, non-empty) to *out. InvalidArgument if a byte has no
  // token and neither byte fallback nor an unknown token applies. Precondition: `workspace` was
  // made for this model. Thread-safe when concurrent calls pass different workspaces.
  absl::Status Encode(std::string_view piece, BpeWorkspace& workspace,
                      std::vector<int32_t>* out) const;

  // One past the largest id of the vocabulary.
  int32_t id_limit() const { return static_cast<int32_t>(bytes_.size()); }
  // Whether `id` is in the vocabulary, and the bytes it stands for.
  bool has_id(int32_t id) const { return id >= 0 && id < id_limit() && present_[id]; }
  const std::string& bytes(int32_t id) const { return bytes_[id]; }
  // The vocabulary entry as written in tokenizer.json (byte-level alphabet).
  const std::string& token(int32_t id) const { return tokens_[id]; }
  // The id of a vocabulary entry as written in tokenizer.json, or -1.
  int32_t TokenToId(std::string_view token) const;
  int32_t num_merges() const { return num_merges_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  absl::Status AppendUnmergeable(unsigned char byte, std::vector<int32_t>* out) const;
  // Encode's path for a word not in the cache: merges it and caches the result. Kept apart so that
  // Encode's hit path holds the key in registers: inlined, GCC 12 spilled the key and reloaded it
  // as one 16-byte load of two 8-byte stores (no store forwarding), and encoding ran 20-25% slower
  // at the same instruction count.
  absl::Status MergeAndCache(std::string_view piece, BpeWorkspace& workspace,
                             std::vector<int32_t>* out) const;
  absl::Status MergeWord(std::string_view piece, BpeWorkspace& workspace,
                         std::vector<int32_t>* out) const;

  std::vector<std::string> bytes_;                         // [id] raw bytes
  std::vector<std::string> tokens_;                        // [id] as in the file
  std::vector<bool> present_;                              // [id]
  absl::flat_hash_map<std::string, int32_t> token_to_id_;  // file form
  absl::flat_hash_map<std::string, int32_t> bytes_to_id_;  // raw bytes (byte-level entries only)
  absl::flat_hash_map<uint64_t, Merge> merges_;
  int32_t byte_ids_[256];  // the token of each single byte, -1 if none
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  int32_t unk_id_ = -1;
  int32_t num_merges_ = 0;
};

}  // namespace tokenizer::internal

#endif  // MODEL_TOKENIZER_INTERNAL_BPE_H_
