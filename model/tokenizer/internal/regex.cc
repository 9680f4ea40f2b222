#include "model/tokenizer/internal/regex.h"

#include <pcre2.h>

#include "absl/strings/str_cat.h"

namespace tokenizer::internal {
namespace {

// Unicode White_Space (what `\s` matches in Hugging Face's library), as class items.
constexpr char kWhiteSpaceItems[] =
    "\\x{09}-\\x{0D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

}  // namespace

RegexWorkspace::RegexWorkspace()
    : data_(pcre2_match_data_create(4, nullptr)),
      context_(pcre2_match_context_create(nullptr)),
      stack_(pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr)) {
  pcre2_jit_stack_assign(static_cast<pcre2_match_context*>(context_), nullptr,
                         static_cast<pcre2_jit_stack*>(stack_));
}

RegexWorkspace::~RegexWorkspace() {
  pcre2_jit_stack_free(static_cast<pcre2_jit_stack*>(stack_));
  pcre2_match_context_free(static_cast<pcre2_match_context*>(context_));
  pcre2_match_data_free(static_cast<pcre2_match_data*>(data_));
}

absl::StatusOr<std::string> TranslateRegex(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  int class_depth = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      ++i;
      if (e == 's') {
        if (class_depth > 0) {
          out += kWhiteSpaceItems;
        } else {
          absl::StrAppend(&out, "[", kWhiteSpaceItems, "]");
        }
      } else if (e == 'S') {
        if (class_depth > 0) {
          return absl::InvalidArgumentError(absl::StrCat("regex '", std::string(pattern),
                                                         "': \\S inside a class is not supported"));
        }
        absl::StrAppend(&out, "[^", kWhiteSpaceItems, "]");
      } else {
        out.push_back(c);
        out.push_back(e);
      }
      continue;
    }
    if (c == '[') {
      ++class_depth;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern) {
  auto translated = TranslateRegex(pattern);
  if (!translated.ok()) return translated.status();
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated->data()), translated->size(),
                    PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat(
        "regex '", std::string(pattern),
        "' does not compile: ", reinterpret_cast<const char*>(message), " at offset ", offset));
  }
  std::unique_ptr<Regex> regex(new Regex());
  regex->pattern_ = std::string(pattern);
  regex->code_ = code;
  regex->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return regex;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

absl::Status Regex::FindAll(std::string_view text, RegexWorkspace& workspace,
                            std::vector<std::pair<size_t, size_t>>* matches) const {
  auto* data = static_cast<pcre2_match_data*>(workspace.data_);
  auto* context = static_cast<pcre2_match_context*>(workspace.context_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  auto* code = static_cast<pcre2_code*>(code_);
  size_t start = 0;
  while (start < text.size()) {
    const int rc =
        jit_ ? pcre2_jit_match(code, subject, text.size(), start, 0, data, context)
             : pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data, context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      return absl::InternalError(
          absl::StrCat("regex '", pattern_, "' failed: ", reinterpret_cast<const char*>(message)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (end > begin) {
      matches->emplace_back(begin, end);
      start = end;
    } else {
      // An empty match: step over one character and search again.
      start = begin + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) {
        ++start;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tokenizer::internal
