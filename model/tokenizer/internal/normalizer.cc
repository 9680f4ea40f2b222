#include "model/tokenizer/internal/normalizer.h"

#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "absl/strings/str_cat.h"

namespace tokenizer::internal {
namespace {

absl::Status ParseInto(const nlohmann::json& config, const std::string& path,
                       std::vector<const void*>* forms) {
  if (config.is_null()) return absl::OkStatus();
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected an object with a \"type\""));
  }
  const std::string type = config["type"];
  if (type == "Sequence") {
    const nlohmann::json& list = config.value("normalizers", nlohmann::json::array());
    if (!list.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".normalizers: expected an array"));
    }
    for (size_t i = 0; i < list.size(); ++i) {
      const absl::Status status =
          ParseInto(list[i], absl::StrCat(path, ".normalizers[", i, "]"), forms);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  UErrorCode error = U_ZERO_ERROR;
  const UNormalizer2* form = nullptr;
  if (type == "NFC") {
    form = unorm2_getNFCInstance(&error);
  } else if (type == "NFKC") {
    form = unorm2_getNFKCInstance(&error);
  } else if (type == "NFD") {
    form = unorm2_getNFDInstance(&error);
  } else if (type == "NFKD") {
    form = unorm2_getNFKDInstance(&error);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": normalizer type \"", type,
                     "\" is not supported (supported: NFC, NFKC, NFD, NFKD, Sequence)"));
  }
  if (U_FAILURE(error) || form == nullptr) {
    return absl::InternalError(
        absl::StrCat(path, ": ICU has no ", type, " data: ", u_errorName(error)));
  }
  forms->push_back(form);
  return absl::OkStatus();
}

bool IsAscii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<Normalizer> Normalizer::FromJson(const nlohmann::json& config,
                                                const std::string& path) {
  Normalizer normalizer;
  const absl::Status status = ParseInto(config, path, &normalizer.forms_);
  if (!status.ok()) return status;
  return normalizer;
}

absl::StatusOr<std::string> Normalizer::Apply(std::string_view text) const {
  // ASCII is invariant under every Unicode normalization form.
  if (forms_.empty() || IsAscii(text)) return std::string(text);
  UErrorCode error = U_ZERO_ERROR;
  int32_t length = 0;
  u_strFromUTF8(nullptr, 0, &length, text.data(), static_cast<int32_t>(text.size()), &error);
  error = U_ZERO_ERROR;
  std::u16string utf16(length, u'\0');
  u_strFromUTF8(reinterpret_cast<UChar*>(utf16.data()), length, nullptr, text.data(),
                static_cast<int32_t>(text.size()), &error);
  std::u16string normalized;
  for (const void* form : forms_) {
    const auto* n = static_cast<const UNormalizer2*>(form);
    error = U_ZERO_ERROR;
    normalized.assign(utf16.size() * 4 + 16, u'\0');
    auto run = [&] {
      return unorm2_normalize(n, reinterpret_cast<const UChar*>(utf16.data()),
                              static_cast<int32_t>(utf16.size()),
                              reinterpret_cast<UChar*>(normalized.data()),
                              static_cast<int32_t>(normalized.size()), &error);
    };
    int32_t size = run();
    if (error == U_BUFFER_OVERFLOW_ERROR) {  // some characters expand 18-fold under NFKD
      error = U_ZERO_ERROR;
      normalized.assign(size, u'\0');
      size = run();
    }
    if (U_FAILURE(error)) {
      return absl::InternalError(absl::StrCat("normalization failed: ", u_errorName(error)));
    }
    normalized.resize(size);
    utf16.swap(normalized);
  }
  error = U_ZERO_ERROR;
  u_strToUTF8(nullptr, 0, &length, reinterpret_cast<const UChar*>(utf16.data()),
              static_cast<int32_t>(utf16.size()), &error);
  error = U_ZERO_ERROR;
  std::string out(length, '\0');
  u_strToUTF8(out.data(), length, nullptr, reinterpret_cast<const UChar*>(utf16.data()),
              static_cast<int32_t>(utf16.size()), &error);
  if (U_FAILURE(error)) {
    return absl::InternalError(absl::StrCat("UTF-16 to UTF-8 failed: ", u_errorName(error)));
  }
  return out;
}

}  // namespace tokenizer::internal
