// Compares our tokenizer's output (from js_parity_helper) with @lenml/tokenizers, a port of
// transformers.js, on the same texts and conversations. Exit 0 only if every id is identical and
// every decode(encode(x)) == x.
//
//   node js_parity.js NODE_MODULES TOKENIZER_JSON CONFIG_JSON|- CASES_JSON OURS_JSON [TEXT_FILE...]
"use strict";
const fs = require("fs");
const path = require("path");

const [nodeModules, tokenizerPath, configPath, casesPath, oursPath, ...textFiles] =
  process.argv.slice(2);
const { TokenizerLoader } = require(path.resolve(nodeModules, "@lenml/tokenizers"));
const tokenizerJSON = JSON.parse(fs.readFileSync(tokenizerPath, "utf8"));
const tokenizerConfig =
  configPath === "-"
    ? { tokenizer_class: "PreTrainedTokenizerFast", clean_up_tokenization_spaces: false }
    : JSON.parse(fs.readFileSync(configPath, "utf8"));
const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });

const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));
const ours = JSON.parse(fs.readFileSync(oursPath, "utf8"));
const texts = (cases.texts || []).concat(textFiles.map((f) => fs.readFileSync(f, "utf8")));

let failures = 0;
function fail(message) {
  failures++;
  if (failures <= 10) console.log("MISMATCH " + message);
}
function firstDifference(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
let tokens = 0;
texts.forEach((text, i) => {
  const js = tok.encode(text, { add_special_tokens: false });
  const mine = ours.ids[i];
  tokens += js.length;
  if (JSON.stringify(js) !== JSON.stringify(mine)) {
    const at = firstDifference(js, mine);
    fail(`text ${i} ${JSON.stringify(text.slice(0, 60))}: first difference at token ${at}: ` +
         `js ${JSON.stringify(js.slice(at, at + 8))} ours ${JSON.stringify(mine.slice(at, at + 8))}`);
  }
  // SKIP_ROUNDTRIP: for tokenizers that add a prefix space (which decode keeps) or normalize.
  if (!ours.roundtrip[i] && !process.env.SKIP_ROUNDTRIP) fail(`text ${i}: decode(encode(x)) != x`);
  if (i < ours.ids_special.length) {
    const special = tok.encode(text, { add_special_tokens: true });
    if (JSON.stringify(special) !== JSON.stringify(ours.ids_special[i])) {
      fail(`text ${i} with add_special_tokens: js ${JSON.stringify(special.slice(0, 8))} ` +
           `ours ${JSON.stringify(ours.ids_special[i].slice(0, 8))}`);
    }
  }
});
const chats = configPath === "-" ? [] : cases.chats || []; // only DeepSeek-V3 has a template
chats.forEach((chat, i) => {
  const options = { add_generation_prompt: !!chat.add_generation_prompt };
  const text = tok.apply_chat_template(chat.messages, { ...options, tokenize: false });
  const ids = tok.apply_chat_template(chat.messages, { ...options, tokenize: true });
  if (text !== ours.chat_text[i]) {
    fail(`chat ${i}: text js ${JSON.stringify(text)} ours ${JSON.stringify(ours.chat_text[i])}`);
  }
  if (JSON.stringify(Array.from(ids)) !== JSON.stringify(ours.chat_ids[i])) {
    fail(`chat ${i}: ids differ`);
  }
});
console.log(`${texts.length} texts (${tokens} tokens), ${chats.length} chats compared; ` +
            `${failures} mismatches`);
process.exit(failures === 0 ? 0 : 1);
