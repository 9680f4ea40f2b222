#include "training/data/corpus.h"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "model/tokenizer/read_file.h"
#include "model/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace training::data {
namespace {

namespace fs = std::filesystem;

constexpr std::streamsize kSniffBytes = 64 * 1024;

// Empty when `contents` is text, else why not.
std::string NotTextReason(std::string_view contents) {
  if (contents.find('\0') != std::string_view::npos) return "binary (holds NUL bytes)";
  size_t bad = 0;
  if (!tokenizer::IsValidUtf8(contents, &bad)) {
    return absl::StrCat("not valid UTF-8 (at byte ", bad, ")");
  }
  return "";
}

bool HasGlobChars(const std::string& spec) {
  return spec.find_first_of("*?[") != std::string::npos;
}

struct Lister {
  CorpusFiles out;
  absl::flat_hash_set<std::string> seen;  // real paths

  // Adds one regular file; `named` means the user named it (or a glob matched it).
  absl::Status AddFile(const std::string& path, bool named) {
    std::error_code error;
    const std::string real = fs::canonical(path, error).string();
    if (error) return absl::NotFoundError(absl::StrCat(path, ": ", error.message()));
    if (!seen.insert(real).second) {
      ++out.skipped_duplicates;
      return absl::OkStatus();
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
      return absl::NotFoundError(absl::StrCat(path, ": cannot stat"));
    // Folder entries are sniffed (their first 64 KiB) and skipped when not text; named files,
    // and the rest of sniffed ones, are checked fully when read.
    if (!named) {
      std::ifstream in(path, std::ios::binary);
      std::string head(kSniffBytes, '\0');
      in.read(head.data(), kSniffBytes);
      const bool whole_file = in.gcount() < kSniffBytes;
      head.resize(static_cast<size_t>(in.gcount()));
      // A character cut at the end of the sniffed bytes is not an error.
      if (!whole_file) head.resize(tokenizer::CompletePrefixLength(head));
      if (!NotTextReason(head).empty()) {
        ++out.skipped_not_text;
        return absl::OkStatus();
      }
    }
    SourceFile file;
    file.path = path;
    file.size = st.st_size;
    file.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    out.files.push_back(std::move(file));
    return absl::OkStatus();
  }

  absl::Status AddFolder(const std::string& root) {
    std::vector<std::string> paths;
    std::error_code error;
    fs::recursive_directory_iterator it(root, fs::directory_options::follow_directory_symlink,
                                        error);
    if (error) return absl::NotFoundError(absl::StrCat(root, ": ", error.message()));
    for (; it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (error) return absl::NotFoundError(absl::StrCat(root, ": ", error.message()));
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file()) paths.push_back(it->path().string());
    }
    std::sort(paths.begin(), paths.end());
    for (const std::string& path : paths) {
      const absl::Status status = AddFile(path, /*named=*/false);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status AddSpec(const std::string& spec) {
    if (HasGlobChars(spec) && !fs::exists(spec)) {
      glob_t matches;
      const int rc = ::glob(spec.c_str(), 0, nullptr, &matches);
      if (rc == GLOB_NOMATCH) {
        return absl::NotFoundError(absl::StrCat(spec, ": no file matches"));
      }
      if (rc != 0) return absl::InvalidArgumentError(absl::StrCat(spec, ": bad glob"));
      std::vector<std::string> paths(matches.gl_pathv, matches.gl_pathv + matches.gl_pathc);
      globfree(&matches);
      std::sort(paths.begin(), paths.end());
      for (const std::string& path : paths) {
        const absl::Status status =
            fs::is_directory(path) ? AddFolder(path) : AddFile(path, /*named=*/true);
        if (!status.ok()) return status;
      }
      return absl::OkStatus();
    }
    std::error_code error;
    const fs::file_status status = fs::status(spec, error);
    if (error || !fs::exists(status)) {
      return absl::NotFoundError(absl::StrCat(spec, ": no such file or folder"));
    }
    if (fs::is_directory(status)) return AddFolder(spec);
    return AddFile(spec, /*named=*/true);
  }
};

}  // namespace

absl::StatusOr<CorpusFiles> ListCorpus(absl::Span<const std::string> specs) {
  if (specs.empty()) return absl::InvalidArgumentError("no corpus given");
  Lister lister;
  for (const std::string& spec : specs) {
    const absl::Status status = lister.AddSpec(spec);
    if (!status.ok()) return status;
  }
  if (lister.out.files.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the corpus has no text file (",
                                                   lister.out.skipped_not_text,
                                                   " non-text skipped): ", specs.front()));
  }
  return std::move(lister.out);
}

absl::Status ParseDocuments(std::string_view path, std::string_view contents, int32_t source,
                            std::vector<Document>* out) {
  const std::string name(path);
  const std::string why = NotTextReason(contents);
  if (!why.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", why));
  const bool jsonl = path.size() >= 6 && path.substr(path.size() - 6) == ".jsonl";
  size_t begin = 0;
  int line_number = 0;
  std::string current;
  auto flush = [&] {
    if (!current.empty()) out->push_back({std::move(current), source});
    current.clear();
  };
  while (begin < contents.size()) {
    size_t end = contents.find('\n', begin);
    const bool last = end == std::string_view::npos;
    if (last) end = contents.size();
    const std::string_view line = contents.substr(begin, end - begin);
    ++line_number;
    if (jsonl) {
      if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
        const nlohmann::json object = nlohmann::json::parse(line, nullptr, false);
        if (object.is_discarded() || !object.is_object() || !object.contains("text") ||
            !object["text"].is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(
              name, ":", line_number, ": expected a JSON object with a string \"text\""));
        }
        current = object["text"].get<std::string>();
        flush();
      }
    } else if (line == "%" || line == "%\r") {
      flush();
    } else {
      current.append(line);
      if (!last) current.push_back('\n');
    }
    begin = end + 1;
  }
  flush();
  return absl::OkStatus();
}

absl::StatusOr<Corpus> ReadCorpus(const CorpusFiles& files) {
  Corpus corpus;
  for (size_t i = 0; i < files.files.size(); ++i) {
    const std::string& path = files.files[i].path;
    absl::StatusOr<std::string> contents = tokenizer::ReadFile(path);
    if (!contents.ok()) return contents.status();
    const absl::Status status =
        ParseDocuments(path, *contents, static_cast<int32_t>(i), &corpus.documents);
    if (!status.ok()) return status;
  }
  for (const Document& d : corpus.documents) corpus.bytes += static_cast<int64_t>(d.text.size());
  if (corpus.documents.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the corpus has no document: ", files.files.front().path,
                     files.files.size() > 1 ? " and others" : "", " hold no text"));
  }
  return corpus;
}

uint64_t DocumentHash(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

bool IsValidationDocument(uint64_t hash, double validation_fraction) {
  if (validation_fraction <= 0) return false;
  if (validation_fraction >= 1) return true;
  return static_cast<double>(hash) < validation_fraction * 18446744073709551616.0;
}

}  // namespace training::data
