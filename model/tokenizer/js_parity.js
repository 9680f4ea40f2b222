// Compares our tokenizer's output (from js_parity_helper) with two references run by node:
//   - Hugging Face's `tokenizers` (npm package `tokenizers`: the Rust library itself, as a native
//     Node addon): ids with and without special tokens, and decoded text;
//   - `@lenml/tokenizers`, a port of transformers.js: ids with and without special tokens, and
//     DeepSeek-V3's apply_chat_template (text and ids) when a tokenizer_config.json is given.
// Exit 0 only if every comparison agrees and decode(encode(x)) == x where expected.
//
//   node js_parity.js NODE_MODULES TOKENIZER_JSON CONFIG_JSON|- CASES_JSON OURS_JSON [TEXT_FILE...]
//
// Environment: SKIP_ROUNDTRIP=1 for tokenizers that add a prefix space (which decode keeps) or
// normalize; LENML_SKIP=CHARS to leave texts holding any of CHARS out of the transformers.js
// comparison only (where that port departs from Hugging Face's library, e.g. its \s matches U+FEFF);
// LENML_OFF=1 to compare with the Rust library alone.
"use strict";
const fs = require("fs");
const path = require("path");

const [nodeModules, tokenizerPath, configPath, casesPath, oursPath, ...textFiles] =
  process.argv.slice(2);
const { TokenizerLoader } = require(path.resolve(nodeModules, "@lenml/tokenizers"));
const { Tokenizer: HfTokenizer } = require(path.resolve(nodeModules, "tokenizers"));

const tokenizerJSON = JSON.parse(fs.readFileSync(tokenizerPath, "utf8"));
const tokenizerConfig =
  configPath === "-"
    ? { tokenizer_class: "PreTrainedTokenizerFast", clean_up_tokenization_spaces: false }
    : JSON.parse(fs.readFileSync(configPath, "utf8"));
const lenml = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
const hf = HfTokenizer.fromFile(path.resolve(tokenizerPath));

const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));
const ours = JSON.parse(fs.readFileSync(oursPath, "utf8"));
const texts = (cases.texts || []).concat(textFiles.map((f) => fs.readFileSync(f, "utf8")));
const lenmlSkip = Array.from(process.env.LENML_SKIP || "");

let failures = 0;
function fail(message) {
  failures++;
  if (failures <= 10) console.log("MISMATCH " + message);
}
const same = (a, b) => JSON.stringify(Array.from(a)) === JSON.stringify(Array.from(b));
function compareIds(who, i, text, theirs, mine) {
  if (same(theirs, mine)) return;
  let at = 0;
  while (at < theirs.length && at < mine.length && theirs[at] === mine[at]) at++;
  fail(`${who}, text ${i} ${JSON.stringify(text.slice(0, 60))}: first difference at token ${at}: ` +
       `theirs ${JSON.stringify(Array.from(theirs).slice(at, at + 8))} ` +
       `ours ${JSON.stringify(mine.slice(at, at + 8))}`);
}

(async () => {
  let tokens = 0;
  let lenmlCompared = 0;
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i];
    const mine = ours.ids[i];
    tokens += mine.length;
    // Hugging Face's Rust library.
    const plain = await hf.encode(text, null, { addSpecialTokens: false });
    compareIds("tokenizers (Rust)", i, text, plain.getIds(), mine);
    if (i < ours.ids_special.length) {
      const special = await hf.encode(text, null, { addSpecialTokens: true });
      compareIds("tokenizers (Rust) with special tokens", i, text, special.getIds(),
                 ours.ids_special[i]);
    }
    const decoded = await hf.decode(mine, false);
    if (decoded !== ours.decoded[i]) fail(`tokenizers (Rust), text ${i}: decoded text differs`);
    if (!ours.roundtrip[i] && !process.env.SKIP_ROUNDTRIP) {
      fail(`text ${i}: decode(encode(x)) != x`);
    }
    // transformers.js.
    if (process.env.LENML_OFF || lenmlSkip.some((c) => text.includes(c))) continue;
    lenmlCompared++;
    compareIds("transformers.js", i, text, lenml.encode(text, { add_special_tokens: false }), mine);
    if (i < ours.ids_special.length) {
      compareIds("transformers.js with special tokens", i, text,
                 lenml.encode(text, { add_special_tokens: true }), ours.ids_special[i]);
    }
  }
  const chats = configPath === "-" ? [] : cases.chats || []; // only DeepSeek-V3 has a template
  chats.forEach((chat, i) => {
    const options = { add_generation_prompt: !!chat.add_generation_prompt };
    const text = lenml.apply_chat_template(chat.messages, { ...options, tokenize: false });
    const ids = lenml.apply_chat_template(chat.messages, { ...options, tokenize: true });
    if (text !== ours.chat_text[i]) {
      fail(`chat ${i}: text js ${JSON.stringify(text)} ours ${JSON.stringify(ours.chat_text[i])}`);
    }
    if (!same(ids, ours.chat_ids[i])) fail(`chat ${i}: ids differ`);
  });
  console.log(`${texts.length} texts (${tokens} tokens) against tokenizers (Rust), ` +
              `${lenmlCompared} against transformers.js, ${chats.length} chats; ` +
              `${failures} mismatches`);
  process.exit(failures === 0 ? 0 : 1);
})();
