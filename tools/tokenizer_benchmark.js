// The JavaScript side of //tools:tokenizer_benchmark: encodes the documents of a JSON file, one
// thread, with @lenml/tokenizers (a port of transformers.js) and with Hugging Face's `tokenizers`
// (the Rust library as a Node addon; run with RAYON_NUM_THREADS=1), and prints one JSON line per
// library with the CPU seconds per pass, the bytes, the token count and an FNV-1a hash of every
// id, so the C++ side can check that all produced identical output.
//
//   node tokenizer_benchmark.js NODE_MODULES TOKENIZER_JSON DOCUMENTS_JSON MIN_SECONDS
"use strict";
const fs = require("fs");
const path = require("path");

const [nodeModules, tokenizerPath, documentsPath, minSeconds] = process.argv.slice(2);
const { TokenizerLoader } = require(path.resolve(nodeModules, "@lenml/tokenizers"));
const { Tokenizer: HfTokenizer } = require(path.resolve(nodeModules, "tokenizers"));
const documents = JSON.parse(fs.readFileSync(documentsPath, "utf8"));
const bytes = documents.reduce((sum, d) => sum + Buffer.byteLength(d, "utf8"), 0);

// CPU time of the process (user + system), as the C++ side counts its thread's.
const cpuSeconds = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

function summarize(lists) {
  let tokens = 0;
  let hash = 0xcbf29ce484222325n;
  for (const list of lists) {
    tokens += list.length;
    for (const id of list) hash = BigInt.asUintN(64, (hash ^ BigInt(id)) * 0x100000001b3n);
  }
  return { tokens, hash: hash.toString(16) };
}

// One checked pass (also a warm-up), then timed passes until minSeconds of CPU time. `toIds`
// (untimed) turns a pass's result into arrays of ids.
async function measure(name, encodeAll, toIds = (result) => result) {
  const checked = summarize(toIds(await encodeAll()));
  let passes = 0;
  let seconds = 0;
  const start = cpuSeconds();
  do {
    await encodeAll();
    passes++;
    seconds = cpuSeconds() - start;
  } while (seconds < Number(minSeconds));
  console.log(JSON.stringify({ name, seconds: seconds / passes, bytes, ...checked }));
}

(async () => {
  const lenml = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(tokenizerPath, "utf8")),
    tokenizerConfig: { tokenizer_class: "PreTrainedTokenizerFast" },
  });
  await measure("transformers.js (node)", async () =>
    documents.map((d) => lenml.encode(d, { add_special_tokens: false })));
  const hf = HfTokenizer.fromFile(path.resolve(tokenizerPath));
  await measure("tokenizers (Rust, node addon)",
                () => hf.encodeBatch(documents, { addSpecialTokens: false }),
                (encodings) => encodings.map((e) => e.getIds()));
})();
