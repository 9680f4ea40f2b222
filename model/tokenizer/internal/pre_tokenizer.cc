#include "model/tokenizer/internal/pre_tokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tokenizer::internal {
namespace {

// GPT-2's pattern, which ByteLevel uses when `use_regex` is true.
constexpr char kGpt2Pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::StatusOr<SplitBehavior> ParseBehavior(const nlohmann::json& value, const std::string& path) {
  if (!value.is_string()) return Invalid(path, "expected a string");
  const std::string name = value;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return Invalid(path, absl::StrCat("unknown split behavior \"", name, "\""));
}

// A regex matching `literal` exactly.
std::string EscapeLiteral(const std::string& literal) {
  std::string out;
  for (char c : literal) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

bool GetBool(const nlohmann::json& config, const char* key, bool fallback) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  return it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace

absl::Status PreTokenizer::ParseInto(const nlohmann::json& config, const std::string& path,
                                     PreTokenizer* out) {
  if (config.is_null()) return absl::OkStatus();
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    return Invalid(path, "expected an object with a \"type\"");
  }
  if (out->byte_level_) {
    return Invalid(path, "a step after ByteLevel is not supported (ByteLevel must come last)");
  }
  const std::string type = config["type"];
  if (type == "Sequence") {
    const auto it = config.find("pretokenizers");
    if (it == config.end() || !it->is_array()) {
      return Invalid(path + ".pretokenizers", "expected an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const absl::Status status =
          ParseInto((*it)[i], absl::StrCat(path, ".pretokenizers[", i, "]"), out);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  if (type == "Split") {
    Step step;
    const auto pattern = config.find("pattern");
    if (pattern == config.end() || !pattern->is_object()) {
      return Invalid(path + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    std::string regex;
    if (pattern->contains("Regex") && (*pattern)["Regex"].is_string()) {
      regex = (*pattern)["Regex"];
    } else if (pattern->contains("String") && (*pattern)["String"].is_string()) {
      regex = EscapeLiteral((*pattern)["String"]);
    } else {
      return Invalid(path + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    auto compiled = Regex::Compile(regex);
    if (!compiled.ok()) return Invalid(path + ".pattern", std::string(compiled.status().message()));
    step.regex = *std::move(compiled);
    auto behavior = ParseBehavior(config.value("behavior", nlohmann::json()), path + ".behavior");
    if (!behavior.ok()) return behavior.status();
    step.behavior = *behavior;
    step.invert = GetBool(config, "invert", false);
    out->steps_.push_back(std::move(step));
    return absl::OkStatus();
  }
  if (type == "Digits") {
    Step step;
    const bool individual = GetBool(config, "individual_digits", false);
    auto compiled = Regex::Compile(individual ? "\\p{N}" : "\\p{N}+");
    if (!compiled.ok()) return compiled.status();
    step.regex = *std::move(compiled);
    out->steps_.push_back(std::move(step));
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    if (GetBool(config, "add_prefix_space", true)) {
      Step step;
      step.kind = Step::kPrefixSpace;
      out->steps_.push_back(std::move(step));
    }
    if (GetBool(config, "use_regex", true)) {
      Step step;
      auto compiled = Regex::Compile(kGpt2Pattern);
      if (!compiled.ok()) return compiled.status();
      step.regex = *std::move(compiled);
      out->steps_.push_back(std::move(step));
    }
    out->byte_level_ = true;
    return absl::OkStatus();
  }
  return Invalid(path, absl::StrCat("pre-tokenizer type \"", type,
                                    "\" is not supported (supported: Sequence, Split, Digits, "
                                    "ByteLevel)"));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::FromJson(const nlohmann::json& config,
                                                                     const std::string& path) {
  std::unique_ptr<PreTokenizer> pre_tokenizer(new PreTokenizer());
  const absl::Status status = ParseInto(config, path, pre_tokenizer.get());
  if (!status.ok()) return status;
  return pre_tokenizer;
}

absl::Status SplitPiece(std::string_view piece, const Regex& regex, SplitBehavior behavior,
                        bool invert, SplitWorkspace& workspace,
                        std::vector<std::string_view>* out) {
  using Range = SplitWorkspace::Range;
  std::vector<std::pair<size_t, size_t>>& matches = workspace.matches;
  matches.clear();
  const absl::Status status = regex.FindAll(piece, workspace.regex, &matches);
  if (!status.ok()) return status;
  // The piece as alternating ranges, each marked as a delimiter or not.
  std::vector<Range>& ranges = workspace.ranges;
  ranges.clear();
  size_t at = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > at) ranges.push_back({at, begin, invert});
    ranges.push_back({begin, end, !invert});
    at = end;
  }
  if (at < piece.size()) ranges.push_back({at, piece.size(), invert});
  auto emit = [&](size_t begin, size_t end) {
    if (end > begin) out->push_back(piece.substr(begin, end - begin));
  };
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Range& r : ranges) {
        if (!r.delimiter) emit(r.begin, r.end);
      }
      break;
    case SplitBehavior::kIsolated:
      for (const Range& r : ranges) emit(r.begin, r.end);
      break;
    case SplitBehavior::kContiguous: {
      size_t i = 0;
      while (i < ranges.size()) {
        size_t j = i + 1;
        if (ranges[i].delimiter) {
          while (j < ranges.size() && ranges[j].delimiter) ++j;
        }
        emit(ranges[i].begin, ranges[j - 1].end);
        i = j;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      size_t start = 0;
      for (const Range& r : ranges) {
        if (r.delimiter) {
          emit(start, r.end);
          start = r.end;
        }
      }
      emit(start, piece.size());
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      size_t start = 0;
      for (const Range& r : ranges) {
        if (r.delimiter && r.begin > start) {
          emit(start, r.begin);
          start = r.begin;
        }
      }
      emit(start, piece.size());
      break;
    }
  }
  return absl::OkStatus();
}

absl::Status PreTokenizer::Split(std::string_view section, SplitWorkspace& workspace,
                                 std::forward_list<std::string>* arena,
                                 std::vector<std::string_view>* pieces) const {
  std::vector<std::string_view>& current = workspace.current;
  std::vector<std::string_view>& next = workspace.next;
  current.clear();
  if (!section.empty()) current.push_back(section);
  for (const Step& step : steps_) {
    next.clear();
    for (std::string_view piece : current) {
      if (step.kind == Step::kPrefixSpace) {
        if (piece.front() == ' ') {
          next.push_back(piece);
        } else {
          arena->push_front(absl::StrCat(" ", std::string(piece)));
          next.push_back(arena->front());
        }
        continue;
      }
      const absl::Status status =
          SplitPiece(piece, *step.regex, step.behavior, step.invert, workspace, &next);
      if (!status.ok()) return status;
    }
    current.swap(next);
  }
  pieces->insert(pieces->end(), current.begin(), current.end());
  return absl::OkStatus();
}

}  // namespace tokenizer::internal
