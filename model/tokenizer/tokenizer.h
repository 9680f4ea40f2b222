// A Hugging Face `tokenizer.json` tokenizer of the byte-level BPE family (DeepSeek-V3, GPT-2,
// Llama 3, Qwen 2): loading, encoding, decoding and streaming decoding, identical in ids to the
// Hugging Face `tokenizers` library on the components below.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok,
//                    tokenizer::Tokenizer::FromFile("tokenizer.json"));
//   ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok->Encode("Hello", /*add_special_tokens=*/true));
//   ASSIGN_OR_RETURN(std::string text, tok->Decode(ids, /*skip_special_tokens=*/false));
//
// Supported components (anything else is InvalidArgument naming the component and its JSON path,
// never a silently different tokenization):
//   added_tokens    content, id, special, lstrip, rstrip, single_word, normalized; matched
//                   leftmost-longest before pre-tokenization (non-normalized ones on the raw text,
//                   normalized ones on the normalized text)
//   normalizer      null, NFC, NFKC, NFD, NFKD, Sequence (ICU)
//   pre_tokenizer   Sequence, Split (Regex / String, every behavior, invert), Digits, ByteLevel
//                   (add_prefix_space, use_regex; must be the last step), regexes run by PCRE2
//   model           BPE (merges by rank, ignore_merges, byte_fallback, unk_token)
//   post_processor  null, ByteLevel, TemplateProcessing (single), Sequence of these
//   decoder         ByteLevel, Sequence of ByteLevel
//
// Thread-safe: every method is const; one Tokenizer may encode from many threads. Encoding reuses
// buffers and a cache of recent words (at most 65,536) from call to call: the Tokenizer keeps one
// such workspace for each Encode it has seen running at the same time, and frees them with itself.
#ifndef MODEL_TOKENIZER_TOKENIZER_H_
#define MODEL_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace tokenizer {

namespace internal {
class BpeModel;
struct EncodeWorkspace;
class Normalizer;
class PreTokenizer;
class TokenMatcher;
}  // namespace internal

// A token matched in the text before pre-tokenization (tokenizer.json "added_tokens").
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;      // skipped by Decode(skip_special_tokens=true)
  bool lstrip = false;       // swallows the whitespace on its left
  bool rstrip = false;       // swallows the whitespace on its right
  bool single_word = false;  // matches only between non-word characters
  bool normalized = false;   // matched on the normalized text (else on the raw text)
};

class Tokenizer {
 public:
  // Reads a tokenizer.json. If a `tokenizer_config.json` lies beside it, its `bos_token` and
  // `eos_token` name the BOS and EOS tokens. NotFound for a missing file; InvalidArgument (with
  // the file name) for bad JSON or an unsupported component.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);

  // Parses tokenizer.json text. `config_json`, if not empty, is a tokenizer_config.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view json,
                                                             std::string_view config_json = "");

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // The ids of `text`. With `add_special_tokens` the post-processor's tokens are added (for
  // example BOS for Llama 3; nothing for DeepSeek-V3's tokenizer.json, whose post-processor is
  // ByteLevel). InvalidArgument if `text` is not valid UTF-8 (naming the byte offset).
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special_tokens = false) const;

  // The text of `ids`; bytes that are not valid UTF-8 become U+FFFD. With `skip_special_tokens`,
  // added tokens marked special are left out. InvalidArgument for an id that is not a token.
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                     bool skip_special_tokens = false) const;

  // The bytes token `id` stands for when decoded (not necessarily valid UTF-8). Precondition:
  // IsValidId(id).
  const std::string& TokenBytes(int32_t id) const;

  // The id of a token written as in tokenizer.json (an added token's content, or a vocabulary
  // entry in the byte-level alphabet), or nullopt.
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The token of `id` as written in tokenizer.json, or nullopt.
  std::optional<std::string> IdToToken(int32_t id) const;
  bool IsValidId(int32_t id) const;
  bool IsSpecial(int32_t id) const;

  // One past the largest id (vocabulary and added tokens). Every valid id is below it.
  int32_t vocab_size() const { return vocab_size_; }
  // BOS / EOS: from tokenizer_config.json, else BOS from a TemplateProcessing post-processor,
  // else a well-known token present in the vocabulary (DeepSeek's <｜begin▁of▁sentence｜>, Llama
  // 3's <|begin_of_text|>, <s>, GPT-2's <|endoftext|>, ...).
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  // A 64-bit FNV-1a hash of the tokenizer.json bytes: names the tokenizer in caches.
  uint64_t fingerprint() const { return fingerprint_; }

  // The pieces Encode would hand to the BPE model for `text` (raw bytes, added tokens left out),
  // appended to *pieces. For the BPE trainer.
  absl::Status PreTokenize(std::string_view text, std::vector<std::string>* pieces) const;

 private:
  Tokenizer();
  // A free workspace from the pool, or a new one; give it back with ReleaseWorkspace.
  std::unique_ptr<internal::EncodeWorkspace> AcquireWorkspace() const;
  void ReleaseWorkspace(std::unique_ptr<internal::EncodeWorkspace> workspace) const;
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens,
                                              internal::EncodeWorkspace& workspace) const;
  absl::Status EncodeSection(std::string_view section, internal::EncodeWorkspace& workspace,
                             std::vector<int32_t>* ids) const;
  absl::Status PreTokenize(std::string_view text, internal::EncodeWorkspace& workspace,
                           std::vector<std::string>* pieces) const;

  std::unique_ptr<internal::Normalizer> normalizer_;
  std::unique_ptr<internal::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<internal::BpeModel> model_;
  std::unique_ptr<internal::TokenMatcher> raw_matcher_;         // non-normalized added tokens
  std::unique_ptr<internal::TokenMatcher> normalized_matcher_;  // normalized added tokens
  std::vector<AddedToken> added_;
  std::vector<int32_t> added_index_;              // [id] index into added_, or -1
  std::vector<std::string> added_bytes_;          // [index] what the added token decodes to
  std::vector<int32_t> prefix_ids_, suffix_ids_;  // post-processor, single sequence
  std::optional<int32_t> bos_id_, eos_id_;
  int32_t vocab_size_ = 0;
  uint64_t fingerprint_ = 0;
  // Workspaces not in use. Each Encode or PreTokenize call holds one for its duration, so
  // concurrent calls never share one and the word cache carries over from call to call.
  mutable absl::Mutex workspaces_mu_;
  mutable std::vector<std::unique_ptr<internal::EncodeWorkspace>> free_workspaces_
      ABSL_GUARDED_BY(workspaces_mu_);
};

// Decodes a stream of ids piece by piece, emitting only complete UTF-8 characters: the bytes of
// a character split across tokens are held until it is complete. Not thread-safe; the tokenizer
// must outlive it.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);

  // The text that `id` completes (possibly empty). InvalidArgument for an invalid id.
  absl::StatusOr<std::string> Add(int32_t id);
  // The rest: held bytes that never completed a character decode to U+FFFD. Resets the decoder.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;
};

}  // namespace tokenizer

#endif  // MODEL_TOKENIZER_TOKENIZER_H_
