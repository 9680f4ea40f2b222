// Writes variants of a trained tokenizer.json that use the other byte-level families' components,
// so js_parity_test compares them too: gpt2 (ByteLevel with its own regex; gpt2_prefix with a
// prefix space),
// llama3 (Llama 3's split regex with (?i:...), TemplateProcessing adding BOS), qwen2 (NFC,
// single digits), nfkc (an NFKC normalizer), digits and behaviors (Digits and every Split
// behavior).
//
//   node js_variants.js TOKENIZER_JSON OUT_DIR
"use strict";
const fs = require("fs");
const path = require("path");

const [input, outDir] = process.argv.slice(2);
const base = JSON.parse(fs.readFileSync(input, "utf8"));
const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false };
const split = (regex) => ({ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false });
const llamaRegex =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const qwenRegex = llamaRegex.replace("\\p{N}{1,3}", "\\p{N}");
const bos = base.added_tokens[0].content;
const variants = {
  gpt2: { pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true } },
  // With a prefix space, decode(encode(x)) is " " + x (as in Hugging Face's library).
  gpt2_prefix: {
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  },
  llama3: {
    pre_tokenizer: { type: "Sequence", pretokenizers: [split(llamaRegex), byteLevel] },
    post_processor: {
      type: "Sequence",
      processors: [
        { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [],
          special_tokens: { [bos]: { id: bos, ids: [0], tokens: [bos] } },
        },
      ],
    },
  },
  qwen2: {
    normalizer: { type: "NFC" },
    pre_tokenizer: { type: "Sequence", pretokenizers: [split(qwenRegex), byteLevel] },
  },
  nfkc: { normalizer: { type: "Sequence", normalizers: [{ type: "NFKC" }] } },
  // Compared with the Rust library only (transformers.js's Digits knows ASCII digits alone, and
  // its Split treats every merging behavior as Isolated).
  digits: {
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [{ type: "Digits", individual_digits: true },
                      { ...byteLevel, use_regex: true }],
    },
  },
  behaviors: {
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { String: " " }, behavior: "MergedWithPrevious", invert: false },
        { type: "Split", pattern: { Regex: "\\p{P}" }, behavior: "Contiguous", invert: false },
        { type: "Split", pattern: { Regex: "\\p{N}+" }, behavior: "MergedWithNext", invert: false },
        { type: "Split", pattern: { Regex: "[aeiou]" }, behavior: "Removed", invert: true },
        { type: "Digits", individual_digits: false },
        byteLevel,
      ],
    },
  },
};
for (const [name, changes] of Object.entries(variants)) {
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify({ ...base, ...changes }));
}
