// The JavaScript side of //tools:tokenizer_benchmark: encodes the documents of a JSON file with
// @lenml/tokenizers (a port of transformers.js), one thread, and prints one JSON line with the
// seconds spent, the bytes, the token count and an FNV-1a hash of every id, so the C++ side can
// check that both produced identical output.
//
//   node tokenizer_benchmark.js NODE_MODULES TOKENIZER_JSON DOCUMENTS_JSON MIN_SECONDS
"use strict";
const fs = require("fs");
const path = require("path");

const [nodeModules, tokenizerPath, documentsPath, minSeconds] = process.argv.slice(2);
const { TokenizerLoader } = require(path.resolve(nodeModules, "@lenml/tokenizers"));
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(tokenizerPath, "utf8")),
  tokenizerConfig: { tokenizer_class: "PreTrainedTokenizerFast" },
});
const documents = JSON.parse(fs.readFileSync(documentsPath, "utf8"));
const bytes = documents.reduce((sum, d) => sum + Buffer.byteLength(d, "utf8"), 0);

function pass() {
  let tokens = 0;
  let hash = 0xcbf29ce484222325n;
  const ids = documents.map((d) => tok.encode(d, { add_special_tokens: false }));
  for (const list of ids) {
    tokens += list.length;
    for (const id of list) hash = BigInt.asUintN(64, (hash ^ BigInt(id)) * 0x100000001b3n);
  }
  return { tokens, hash };
}
// Warm-up pass (also the one whose output is checked), then timed passes of encoding only.
const checked = pass();
// CPU time of the process (user + system), as the C++ side counts its thread's.
const cpuSeconds = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};
let passes = 0;
const start = cpuSeconds();
let seconds = 0;
do {
  for (const d of documents) tok.encode(d, { add_special_tokens: false });
  passes++;
  seconds = cpuSeconds() - start;
} while (seconds < Number(minSeconds));
console.log(JSON.stringify({
  seconds: seconds / passes, bytes, tokens: checked.tokens, hash: checked.hash.toString(16),
}));
