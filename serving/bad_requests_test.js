// At least 200 malformed requests against the real server, each of which must get a 4xx with an
// OpenAI-shaped JSON error, then a normal request that must still succeed; unknown fields are
// ignored. Plain node http (no SDK), so that bodies can be broken at the byte level.
// Usage: node bad_requests_test.js HOST PORT MODEL
'use strict';
const http = require('http');
const [host, port, model] = process.argv.slice(2);

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? Buffer.alloc(0) :
        Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request({host, port, method, path, headers: {
      'Content-Type': 'application/json', 'Content-Length': data.length}}, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({status: res.statusCode, body: Buffer.concat(chunks).toString()}));
    });
    req.on('error', (e) => resolve({status: 0, body: String(e)}));
    req.end(data);
  });
}

const good = {model, prompt: 'Hello', max_tokens: 2, temperature: 0};
const goodChat = {model, messages: [{role: 'user', content: 'Hi'}], max_tokens: 2};
const cases = [];
// Broken JSON: every prefix of a valid body, and assorted garbage.
const text = JSON.stringify(good);
for (let i = 0; i < text.length - 1; i += 1) cases.push(['/v1/completions', text.slice(0, i)]);
for (const g of ['{', '}', '[]', '[1,2]', 'null', 'true', '42', '"str"', '{"prompt": }',
                 '{prompt: "x"}', "{'prompt': 'x'}", '{"prompt": "x",}', '{"a":1}{"b":2}',
                 '\u0000', 'NaN', '{"max_tokens": NaN, "prompt": "x"}', '{"prompt": "x"']) {
  cases.push(['/v1/completions', g]);
  cases.push(['/v1/chat/completions', g]);
}
// Wrong types and out-of-range values, one field at a time.
const wrong = {
  prompt: [null, 5, true, {}, [], [[]], [1.5], [-1], [999999999], [[1, 'a']], '', [''], [{}]],
  max_tokens: ['10', 1.5, -1, 0, true, [], {}, 1e30, -1e30, 18446744073709551615, 9007199254740993],
  temperature: ['hot', -0.1, 2.5, 1e308, -1e308, [], {}, true],
  top_p: [0, -1, 1.5, 'x', [], true],
  top_k: [-2, 'x', 1.5, true],
  n: [0, -3, 17, 1000, 'x', 1.5],
  seed: ['x', 1.5, [], {}],
  stop: [5, [5], [''], '', Array(17).fill('a'), {}, true, [null]],
  stop_token_ids: ['x', [-1], ['a'], {}],
  logprobs: [-1, 21, 'x', 1.5, 1000],
  stream: ['yes', 1, [], {}],
  echo: ['yes', 2],
  model: [5, [], {}, 'not-this-model'],
  presence_penalty: [3, -3, 'x'],
  frequency_penalty: [3, -3, 'x'],
  stream_options: ['x', 5, []],
  ignore_eos: ['x', 3],
};
for (const [field, values] of Object.entries(wrong)) {
  for (const v of values) cases.push(['/v1/completions', Object.assign({}, good, {[field]: v})]);
}
const wrongChat = {
  messages: [null, [], {}, 'hi', [null], [{}], [{role: 'user'}], [{role: 'robot', content: 'x'}],
             [{role: 5, content: 'x'}], [{role: 'user', content: 5}],
             [{role: 'user', content: [{type: 'image_url', image_url: 'x'}]}],
             [{role: 'user', content: [{type: 'text'}]}], [{role: 'user', content: {}}]],
  max_completion_tokens: [0, -5, 'x'],
  top_logprobs: [-1, 21, 'x'],
  logprobs: ['x', 3],
  max_tokens: [0, -1, 'x', 1e20],
};
for (const [field, values] of Object.entries(wrongChat)) {
  for (const v of values) cases.push(['/v1/chat/completions', Object.assign({}, goodChat, {[field]: v})]);
}
// Invalid UTF-8 inside JSON strings.
for (const bytes of [[0xff], [0xc3, 0x28], [0xe2, 0x82], [0xf0, 0x28, 0x8c, 0x28], [0xc0, 0xaf],
                     [0xed, 0xa0, 0x80], [0x80]]) {
  const body = Buffer.concat([Buffer.from('{"prompt": "a'), Buffer.from(bytes), Buffer.from('b"}')]);
  cases.push(['/v1/completions', body]);
  const chat = Buffer.concat([Buffer.from('{"messages": [{"role": "user", "content": "a'),
                              Buffer.from(bytes), Buffer.from('"}]}')]);
  cases.push(['/v1/chat/completions', chat]);
  cases.push(['/tokenize', Buffer.concat([Buffer.from('{"prompt": "'), Buffer.from(bytes), Buffer.from('"}')])]);
}
// Too long for the context, a huge body, other routes.
cases.push(['/v1/completions', {model, prompt: 'word '.repeat(2000)}]);
cases.push(['/v1/completions', {model, prompt: Array(500).fill(5)}]);
cases.push(['/v1/completions', {model, prompt: 'x'.repeat(10 * 1024 * 1024)}]);
cases.push(['/v1/chat/completions', Buffer.alloc(10 * 1024 * 1024, 0x61)]);
for (const [path, body] of [['/detokenize', {tokens: [-1]}], ['/detokenize', {tokens: 'x'}],
                            ['/detokenize', {}], ['/detokenize', '{'], ['/detokenize', {tokens: [1e12]}],
                            ['/tokenize', {}], ['/tokenize', {prompt: 5}], ['/tokenize', '['],
                            ['/tokenize', {messages: []}], ['/v2/completions', good],
                            ['/v1/completion', good], ['/', good]]) {
  cases.push([path, body]);
}

async function main() {
  let failures = 0;
  let count = 0;
  for (const [path, body] of cases) {
    const r = await request('POST', path, body);
    count++;
    let shaped = false;
    try {
      const j = JSON.parse(r.body);
      shaped = j.error && typeof j.error.message === 'string' && typeof j.error.type === 'string';
    } catch (e) {}
    if (r.status < 400 || r.status >= 500 || !shaped) {
      failures++;
      const shown = Buffer.isBuffer(body) ? '<' + body.length + ' bytes>' :
          (typeof body === 'string' ? body : JSON.stringify(body)).slice(0, 120);
      console.log('FAIL: POST ' + path + ' ' + shown + ' -> ' + r.status + ' ' + r.body.slice(0, 200));
    }
  }
  for (const path of ['/v1/completions', '/nope', '/v1/models/other']) {
    const r = await request('GET', path);
    count++;
    if (r.status !== 404 || !JSON.parse(r.body).error) {
      failures++;
      console.log('FAIL: GET ' + path + ' -> ' + r.status);
    }
  }
  console.log(count + ' malformed requests, ' + failures + ' not answered with a 4xx JSON error');
  // Unknown fields are ignored; the server still answers normally.
  const ok = await request('POST', '/v1/completions', Object.assign({}, good, {
    user: 'x', logit_bias: {}, best_of: 1, suffix: null, some_future_field: {a: [1]}}));
  const okChat = await request('POST', '/v1/chat/completions', Object.assign({}, goodChat, {
    tools: [], parallel_tool_calls: false, unknown: 1}));
  const health = await request('GET', '/health');
  if (ok.status !== 200 || JSON.parse(ok.body).choices.length !== 1) {
    failures++;
    console.log('FAIL: a normal request after them -> ' + ok.status + ' ' + ok.body);
  }
  if (okChat.status !== 200) {
    failures++;
    console.log('FAIL: a normal chat request after them -> ' + okChat.status + ' ' + okChat.body);
  }
  if (health.status !== 200) failures++;
  if (count < 200) {
    failures++;
    console.log('FAIL: only ' + count + ' cases');
  }
  console.log(failures === 0 ? 'PASS' : failures + ' FAILURES');
  process.exit(failures === 0 ? 0 : 1);
}
main();
