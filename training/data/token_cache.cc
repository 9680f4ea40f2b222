#include "training/data/token_cache.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/thread_pool.h"
#include "model/tokenizer/read_file.h"

namespace training::data {
namespace {

constexpr char kMagic[8] = {'D', 'S', 'M', 'O', 'E', 'T', 'K', '1'};

template <typename T>
void Put(std::string* out, const T& value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(T));
}

template <typename T>
bool Get(const std::string& in, size_t* at, T* value) {
  if (*at + sizeof(T) > in.size()) return false;
  std::memcpy(value, in.data() + *at, sizeof(T));
  *at += sizeof(T);
  return true;
}

uint64_t Checksum(const char* data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i)
    h = (h ^ static_cast<unsigned char>(data[i])) * 0x100000001b3ull;
  return h;
}

std::string Header(const CorpusFiles& files, const tokenizer::Tokenizer& tokenizer) {
  std::string header(kMagic, sizeof(kMagic));
  Put(&header, tokenizer.fingerprint());
  Put(&header, static_cast<uint64_t>(files.files.size()));
  for (const SourceFile& file : files.files) {
    Put(&header, static_cast<uint32_t>(file.path.size()));
    header += file.path;
    Put(&header, file.size);
    Put(&header, file.mtime_ns);
  }
  return header;
}

// Parses the cache body after the header; false (with why) if it is corrupt.
bool ParseBody(const std::string& data, size_t at, TokenizedCorpus* out, std::string* why) {
  uint64_t documents = 0, tokens = 0, checksum = 0;
  if (!Get(data, &at, &documents) || !Get(data, &at, &tokens) || !Get(data, &at, &checksum)) {
    *why = "truncated header";
    return false;
  }
  const size_t payload =
      (documents + 1) * sizeof(int64_t) + documents * sizeof(uint64_t) + tokens * sizeof(int32_t);
  if (documents > (1ull << 40) || tokens > (1ull << 40) || data.size() - at != payload) {
    *why = "truncated or wrong length";
    return false;
  }
  if (Checksum(data.data() + at, payload) != checksum) {
    *why = "checksum mismatch";
    return false;
  }
  out->offsets.resize(documents + 1);
  out->hashes.resize(documents);
  out->tokens.resize(tokens);
  std::memcpy(out->offsets.data(), data.data() + at, out->offsets.size() * sizeof(int64_t));
  at += out->offsets.size() * sizeof(int64_t);
  std::memcpy(out->hashes.data(), data.data() + at, out->hashes.size() * sizeof(uint64_t));
  at += out->hashes.size() * sizeof(uint64_t);
  std::memcpy(out->tokens.data(), data.data() + at, out->tokens.size() * sizeof(int32_t));
  for (uint64_t d = 0; d < documents; ++d) {
    if (out->offsets[d] > out->offsets[d + 1]) {
      *why = "bad offsets";
      return false;
    }
  }
  if (out->offsets.front() != 0 || out->offsets.back() != static_cast<int64_t>(tokens)) {
    *why = "bad offsets";
    return false;
  }
  return true;
}

absl::Status WriteCache(const std::string& path, const std::string& header,
                        const TokenizedCorpus& corpus) {
  std::string body;
  const size_t payload = corpus.offsets.size() * sizeof(int64_t) +
                         corpus.hashes.size() * sizeof(uint64_t) +
                         corpus.tokens.size() * sizeof(int32_t);
  body.reserve(payload);
  body.append(reinterpret_cast<const char*>(corpus.offsets.data()),
              corpus.offsets.size() * sizeof(int64_t));
  body.append(reinterpret_cast<const char*>(corpus.hashes.data()),
              corpus.hashes.size() * sizeof(uint64_t));
  body.append(reinterpret_cast<const char*>(corpus.tokens.data()),
              corpus.tokens.size() * sizeof(int32_t));
  std::string head = header;
  Put(&head, static_cast<uint64_t>(corpus.hashes.size()));
  Put(&head, static_cast<uint64_t>(corpus.tokens.size()));
  Put(&head, Checksum(body.data(), body.size()));
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    if (!out.good()) return absl::InternalError(absl::StrCat(path, ": cannot write the cache"));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(path, ": cannot rename ", temporary));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TokenizedCorpus> TokenizeCorpus(const CorpusFiles& files,
                                               const tokenizer::Tokenizer& tokenizer, int threads,
                                               int64_t* bytes_read) {
  absl::StatusOr<Corpus> corpus = ReadCorpus(files);
  if (!corpus.ok()) return corpus.status();
  if (bytes_read != nullptr) *bytes_read = corpus->bytes;
  const int64_t n = static_cast<int64_t>(corpus->documents.size());
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::vector<int32_t>> ids(n);
  std::vector<absl::Status> errors(n);
  core::ThreadPool pool(threads);
  pool.ParallelFor(0, n, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d) {
      absl::StatusOr<std::vector<int32_t>> encoded = tokenizer.Encode(corpus->documents[d].text);
      if (encoded.ok()) {
        ids[d] = *std::move(encoded);
      } else {
        errors[d] = encoded.status();
      }
    }
  });
  TokenizedCorpus out;
  out.offsets.reserve(n + 1);
  out.offsets.push_back(0);
  out.hashes.reserve(n);
  for (int64_t d = 0; d < n; ++d) {
    if (!errors[d].ok()) {
      return absl::Status(
          errors[d].code(),
          absl::StrCat(files.files[corpus->documents[d].source].path, ": ", errors[d].message()));
    }
    out.tokens.insert(out.tokens.end(), ids[d].begin(), ids[d].end());
    out.offsets.push_back(static_cast<int64_t>(out.tokens.size()));
    out.hashes.push_back(DocumentHash(corpus->documents[d].text));
  }
  return out;
}

absl::StatusOr<TokenizedCorpus> LoadOrTokenize(const CorpusFiles& files,
                                               const tokenizer::Tokenizer& tokenizer,
                                               const std::string& cache_path, int threads,
                                               CacheInfo* info) {
  const auto start = std::chrono::steady_clock::now();
  CacheInfo local;
  if (info == nullptr) info = &local;
  *info = CacheInfo();
  const std::string header = Header(files, tokenizer);
  if (cache_path.empty()) {
    info->rebuilt_because = "no cache path";
  } else if (absl::StatusOr<std::string> data = tokenizer::ReadFile(cache_path); !data.ok()) {
    info->rebuilt_because = "no cache";
  } else if (data->size() < sizeof(kMagic) || std::memcmp(data->data(), kMagic, 8) != 0) {
    info->rebuilt_because = "not a token cache (bad magic)";
  } else if (data->compare(0, header.size(), header) != 0) {
    info->rebuilt_because = "sources or tokenizer changed";
  } else {
    TokenizedCorpus cached;
    if (ParseBody(*data, header.size(), &cached, &info->rebuilt_because)) {
      info->reused = true;
      info->seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return cached;
    }
    info->rebuilt_because = "corrupt cache: " + info->rebuilt_because;
  }
  absl::StatusOr<TokenizedCorpus> fresh =
      TokenizeCorpus(files, tokenizer, threads, &info->bytes_read);
  if (!fresh.ok()) return fresh.status();
  if (!cache_path.empty()) {
    const absl::Status status = WriteCache(cache_path, header, *fresh);
    if (!status.ok()) return status;
  }
  info->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return fresh;
}

}  // namespace training::data
