// UTF-8 helpers for the tokenizer: validation, lossy decoding (invalid bytes become U+FFFD, one per
// maximal invalid subpart, as Rust's from_utf8_lossy and the WHATWG decoder do), and the length of
// the prefix of a byte stream that ends on a character boundary (for streaming decode).
#ifndef MODEL_TOKENIZER_UTF8_H_
#define MODEL_TOKENIZER_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace tokenizer {

// Length in bytes of the valid UTF-8 sequence starting at s[i], or 0 if the bytes there do not
// start a valid sequence (an invalid lead byte, a bad or missing continuation, an overlong form, a
// surrogate or a code point above U+10FFFF). Precondition: i < s.size().
size_t ValidSequenceLength(std::string_view s, size_t i);

// True when `s` is valid UTF-8; otherwise false and *bad_offset (if not null) is the byte offset
// of the first invalid sequence.
bool IsValidUtf8(std::string_view s, size_t* bad_offset = nullptr);

// Appends `bytes` to *out with every maximal invalid subpart replaced by U+FFFD.
void AppendLossyUtf8(std::string_view bytes, std::string* out);

// The length of the longest prefix of `bytes` after which no incomplete-but-possibly-valid
// sequence remains: the trailing 1..3 bytes are held back only when more bytes could complete
// them into a valid character. Invalid bytes are not held back (they decode to U+FFFD at once).
size_t CompletePrefixLength(std::string_view bytes);

// Appends the UTF-8 encoding of code point `cp` (<= 0x10FFFF, not a surrogate) to *out.
void AppendCodePoint(char32_t cp, std::string* out);

// Decodes the character at s[*i] (which must be valid UTF-8) and advances *i past it.
char32_t NextCodePoint(std::string_view s, size_t* i);

}  // namespace tokenizer

#endif  // MODEL_TOKENIZER_UTF8_H_
