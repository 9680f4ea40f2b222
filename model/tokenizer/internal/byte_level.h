// GPT-2's byte-level alphabet: each of the 256 byte values is written as one printable Unicode
// character (printable Latin-1 bytes as themselves, the others as U+0100 upwards), so that a
// tokenizer.json vocabulary of byte strings is valid text. The tokenizer keeps its vocabulary as
// raw bytes; these maps convert at load and save time.
#ifndef MODEL_TOKENIZER_INTERNAL_BYTE_LEVEL_H_
#define MODEL_TOKENIZER_INTERNAL_BYTE_LEVEL_H_

#include <array>
#include <string>
#include <string_view>

namespace tokenizer::internal {

// The code point that stands for each byte.
const std::array<char32_t, 256>& ByteToCodePoint();

// Writes `bytes` in the byte-level alphabet (UTF-8 of the code points above).
std::string BytesToByteLevel(std::string_view bytes);

// Converts a byte-level string back to the bytes it stands for. Returns false (and leaves *out
// unspecified) if `text` is not valid UTF-8 or holds a character outside the alphabet.
bool ByteLevelToBytes(std::string_view text, std::string* out);

}  // namespace tokenizer::internal

#endif  // MODEL_TOKENIZER_INTERNAL_BYTE_LEVEL_H_
