// Reading a text corpus: which files make it up, and the documents in them.
//
//   ASSIGN_OR_RETURN(CorpusFiles files, ListCorpus({"/usr/share/games/fortunes", "more/*.jsonl"}));
//   ASSIGN_OR_RETURN(Corpus corpus, ReadCorpus(files));
//
// A spec is a file, a folder (read recursively, hidden entries skipped) or a glob (glob(3)).
// Files are listed in sorted order and deduplicated by real path (fortune's `.u8` links point at
// the same files). A file is text when it is valid UTF-8 without NUL bytes: inside a folder, files
// whose first 64 KiB are not (such as fortune's `.dat` indexes) are skipped and counted; a file
// named directly, or matched by a glob, must be text, and so must the rest of a sniffed file
// (ReadCorpus fails, naming it, otherwise).
//
// Documents: a `.jsonl` file holds one JSON object per non-blank line with a string field `text`;
// any other file is plain text, split into documents at lines that are exactly `%` (the fortune
// format; a file without such lines is one document). Empty documents are dropped.
//
// Errors are one line naming the file: NotFound (missing path), InvalidArgument (binary or
// invalid UTF-8 file named directly, bad JSONL line, empty corpus).
#ifndef TRAINING_DATA_CORPUS_H_
#define TRAINING_DATA_CORPUS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace training::data {

struct SourceFile {
  std::string path;  // as found (spec joined with the relative path)
  int64_t size = 0;
  int64_t mtime_ns = 0;
};

struct CorpusFiles {
  std::vector<SourceFile> files;
  int64_t skipped_not_text = 0;    // inside folders: binary or not UTF-8
  int64_t skipped_duplicates = 0;  // same real path listed before
};

struct Document {
  std::string text;
  int32_t source = 0;  // index into CorpusFiles::files
};

struct Corpus {
  std::vector<Document> documents;
  int64_t bytes = 0;  // sum of the documents' sizes
};

// Expands `specs` into the corpus's files (stat; folder entries' first 64 KiB are sniffed).
// InvalidArgument if no file results.
absl::StatusOr<CorpusFiles> ListCorpus(absl::Span<const std::string> specs);

// Reads the documents of every file, in order. InvalidArgument if none.
absl::StatusOr<Corpus> ReadCorpus(const CorpusFiles& files);

// Splits a file's contents into documents as described above (exposed for tests).
absl::Status ParseDocuments(std::string_view path, std::string_view contents, int32_t source,
                            std::vector<Document>* out);

// A stable 64-bit hash of a document (FNV-1a, then a splitmix64 finalizer): the same on every
// machine and run. A document is in the validation split when
// DocumentHash(text) < validation_fraction * 2^64.
uint64_t DocumentHash(std::string_view text);
bool IsValidationDocument(uint64_t hash, double validation_fraction);

}  // namespace training::data

#endif  // TRAINING_DATA_CORPUS_H_
