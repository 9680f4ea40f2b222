// Writes N random texts (seeded, so every run writes the same) mixing what tokenizers find hard:
// letters with combining marks, digits of several scripts, every kind of Unicode space (U+0085,
// U+FEFF and U+180E included), control characters, punctuation and symbols, CJK, Hangul, RTL
// scripts, emoji sequences, astral characters, and whole or broken special tokens.
//
//   node js_fuzz_cases.js N SEED OUT_JSON
"use strict";
const fs = require("fs");

const [count, seed, out] = process.argv.slice(2);
let state = BigInt(seed) & 0xffffffffffffffffn;
function next() {  // splitmix64
  state = (state + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  let z = state;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  return Number((z ^ (z >> 31n)) % 1000000007n);
}
const pools = [
  "abcXYZ", "éüñçß", "\u0301\u0308\u0303", "0123456789", "٠١٢٣", "Ⅻ½²",
  " ", "\t\n\r\u000b\u000c", "\u0085\u00a0\u1680\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u180e\u200b",
  "\u0000\u0001\u0007\u001b\u007f\u0080\u009f", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "«»¿¡§¶•†‡…‰€£¥©®™",
  "中文字词语言模型深度求索", "ひらがなカタカナ", "한국어", "русский", "עברית", "العربية", "ไทย",
  "😀👍🏽👩‍👩‍👧🇫🇷❤️", "<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜end▁of", "'s 're 'll", "\u{10348}\u{1D11E}",
];
const texts = [];
for (let n = 0; n < Number(count); n++) {
  const parts = [];
  const k = 1 + (next() % 40);
  for (let j = 0; j < k; j++) {
    const pool = Array.from(pools[next() % pools.length]);
    if (pool.length > 1 && next() % 10 < 7) {
      const i = next() % pool.length;
      parts.push(pool.slice(i, Math.min(pool.length, i + 1 + (next() % 4))).join(""));
    } else {
      parts.push(pool.join(""));
    }
  }
  texts.push(parts.join(""));
}
fs.writeFileSync(out, JSON.stringify({ texts }));
