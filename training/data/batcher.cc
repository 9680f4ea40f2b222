#include "training/data/batcher.h"

#include <numeric>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace training::data {
namespace {

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> PackDocuments(const TokenizedCorpus& corpus, Split split,
                                                   double validation_fraction, int32_t eos_id) {
  std::vector<int32_t> stream;
  int64_t documents = 0;
  for (int64_t d = 0; d < corpus.num_documents(); ++d) {
    const bool validation = IsValidationDocument(corpus.hashes[d], validation_fraction);
    if (validation != (split == Split::kValidation)) continue;
    stream.insert(stream.end(), corpus.tokens.begin() + corpus.offsets[d],
                  corpus.tokens.begin() + corpus.offsets[d + 1]);
    stream.push_back(eos_id);
    ++documents;
  }
  if (documents == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", split == Split::kTrain ? "train" : "validation", " split has no document (",
        corpus.num_documents(), " documents, validation fraction ", validation_fraction, ")"));
  }
  return stream;
}

std::string DataState::Serialize() const {
  return absl::StrCat("epoch=", epoch, " position=", position);
}

absl::StatusOr<DataState> DataState::Parse(std::string_view text) {
  const std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(text.data(), text.size()), ' ');
  DataState state;
  if (parts.size() != 2 || !absl::StartsWith(parts[0], "epoch=") ||
      !absl::StartsWith(parts[1], "position=") ||
      !absl::SimpleAtoi(parts[0].substr(6), &state.epoch) ||
      !absl::SimpleAtoi(parts[1].substr(9), &state.position) || state.epoch < 0 ||
      state.position < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad data state '", std::string(text), "' (expected 'epoch=E position=P')"));
  }
  return state;
}

absl::StatusOr<Batcher> Batcher::Create(std::vector<int32_t> stream,
                                        const BatcherOptions& options) {
  if (options.seq_len < 1 || options.batch_size < 1 || options.dp_size < 1 || options.dp_rank < 0 ||
      options.dp_rank >= options.dp_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batcher: need seq_len >= 1, batch_size >= 1, 0 <= dp_rank < dp_size; got seq_len ",
        options.seq_len, ", batch_size ", options.batch_size, ", dp_rank ", options.dp_rank,
        ", dp_size ", options.dp_size));
  }
  Batcher batcher;
  batcher.options_ = options;
  const int64_t n = static_cast<int64_t>(stream.size());
  batcher.num_sequences_ = n > 0 ? (n - 1) / options.seq_len : 0;
  if (batcher.num_sequences_ < batcher.step_sequences()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the corpus is too small: ", n, " tokens make ", batcher.num_sequences_,
                     " sequences of ", options.seq_len + 1, " tokens, and one step needs ",
                     batcher.step_sequences(), " (batch_size x dp_size)"));
  }
  batcher.stream_ = std::move(stream);
  return batcher;
}

void Batcher::Permute(int64_t epoch) {
  if (permutation_epoch_ == epoch) return;
  permutation_.resize(num_sequences_);
  std::iota(permutation_.begin(), permutation_.end(), 0);
  if (options_.shuffle) {
    uint64_t rng = options_.seed ^ (0xd1b54a32d192ed03ull * static_cast<uint64_t>(epoch + 1));
    for (int64_t i = num_sequences_ - 1; i > 0; --i) {
      const int64_t j = static_cast<int64_t>(SplitMix64(&rng) % static_cast<uint64_t>(i + 1));
      std::swap(permutation_[i], permutation_[j]);
    }
  }
  permutation_epoch_ = epoch;
}

void Batcher::Next(std::vector<int32_t>* batch) {
  if (state_.position + step_sequences() > num_sequences_) {
    ++state_.epoch;
    state_.position = 0;
  }
  Permute(state_.epoch);
  const int row = options_.seq_len + 1;
  batch->resize(static_cast<size_t>(options_.batch_size) * row);
  const int64_t first =
      state_.position + static_cast<int64_t>(options_.dp_rank) * options_.batch_size;
  for (int b = 0; b < options_.batch_size; ++b) {
    const int64_t sequence = permutation_[first + b];
    std::copy(stream_.begin() + sequence * options_.seq_len,
              stream_.begin() + sequence * options_.seq_len + row,
              batch->begin() + static_cast<int64_t>(b) * row);
  }
  state_.position += step_sequences();
}

absl::Status Batcher::Restore(const DataState& state) {
  if (state.epoch < 0 || state.position < 0 || state.position % step_sequences() != 0 ||
      state.position > num_sequences_) {
    return absl::InvalidArgumentError(absl::StrCat("data state ", state.Serialize(),
                                                   " does not fit this data (", num_sequences_,
                                                   " sequences, ", step_sequences(), " per step)"));
  }
  state_ = state;
  return absl::OkStatus();
}

}  // namespace training::data
