// The client side of //serving:disagg_test, with plain node http (no SDK).
//   node disagg_client.js equal ROUTER_PORT BOTH_PORT   outputs through the router equal the
//                                                       colocated server's (greedy, seeded sampling,
//                                                       chat, streaming, n, logprobs; one at a time
//                                                       and 12 at once)
//   node disagg_client.js bad ROUTER_PORT BOTH_PORT     bad input gets the same status and body
//   node disagg_client.js streams ROUTER_PORT N TOKENS  N concurrent streams; prints one JSON line
//                                                       per stream: {text, done, error, ms}
'use strict';
const http = require('http');
const [mode, a, b, c] = process.argv.slice(2);

function request(port, method, path, body, onData) {
  return new Promise((resolve) => {
    const data = body === undefined ? Buffer.alloc(0) :
        Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request({host: '127.0.0.1', port, method, path, headers: {
      'Content-Type': 'application/json', 'Content-Length': data.length}}, (res) => {
      const chunks = [];
      res.on('data', (x) => { chunks.push(x); if (onData) onData(x); });
      res.on('end', () => resolve({status: res.statusCode, body: Buffer.concat(chunks).toString()}));
      res.on('error', (e) => resolve({status: res.statusCode, body: Buffer.concat(chunks).toString(), error: String(e)}));
    });
    req.on('error', (e) => resolve({status: 0, body: '', error: String(e)}));
    req.end(data);
  });
}

// What must be equal in an answer: the choices' text, finish reasons, logprobs and the usage; or
// the streamed events' texts and finish reasons.
function essence(r, stream) {
  if (r.status !== 200) return {status: r.status, body: r.body};
  if (!stream) {
    const j = JSON.parse(r.body);
    return {status: 200, choices: j.choices, usage: j.usage};
  }
  const events = r.body.split('\n\n').filter((e) => e.startsWith('data: '));
  if (events[events.length - 1] !== 'data: [DONE]') return {status: 200, unfinished: r.body};
  return {status: 200, events: events.slice(0, -1).map((e) => {
    const j = JSON.parse(e.slice(6));
    return {choices: j.choices, usage: j.usage};
  })};
}

const prompts = ['Hello', 'A fortune:', 'The answer is', 'Once upon a time there was a',
                 'x'.repeat(90), 'Tell me more about the weather today, please'];
function cases() {
  const out = [];
  prompts.forEach((p, i) => {
    out.push(['/v1/completions', {prompt: p, max_tokens: 24, temperature: 0, ignore_eos: true}, false]);
    out.push(['/v1/completions', {prompt: p, max_tokens: 16, temperature: 0.9, top_p: 0.9, seed: 7 + i,
                                  ignore_eos: true, logprobs: 2}, false]);
    out.push(['/v1/completions', {prompt: p, max_tokens: 12, temperature: 0, stream: true,
                                  stream_options: {include_usage: true}, ignore_eos: true}, true]);
  });
  out.push(['/v1/completions', {prompt: ['Hello', 'World'], n: 2, max_tokens: 8, temperature: 0.7,
                                seed: 3, ignore_eos: true, echo: true}, false]);
  out.push(['/v1/completions', {prompt: 'Hi', max_tokens: 1, temperature: 0}, false]);
  out.push(['/v1/chat/completions', {messages: [{role: 'user', content: 'Hi there'}], max_tokens: 10,
                                     temperature: 0}, false]);
  out.push(['/v1/chat/completions', {messages: [{role: 'user', content: 'Stream it'}], max_tokens: 10,
                                     temperature: 0, stream: true, logprobs: true, top_logprobs: 1}, true]);
  return out;
}

async function equal(router, both) {
  let bad = 0;
  const check = (name, got, want) => {
    const g = JSON.stringify(got), w = JSON.stringify(want);
    if (g !== w) {
      bad += 1;
      console.log(`FAIL: ${name}:\n  router: ${g.slice(0, 400)}\n  server: ${w.slice(0, 400)}`);
    }
  };
  const all = cases();
  const want = [];
  for (const [path, body, stream] of all) want.push(essence(await request(both, 'POST', path, body), stream));
  for (let i = 0; i < all.length; i += 1) {
    const [path, body, stream] = all[i];
    check(`case ${i} alone`, essence(await request(router, 'POST', path, body), stream), want[i]);
  }
  if (!bad) console.log(`ok: ${all.length} requests one at a time through the router equal the colocated server's`);
  const batch = all.slice(0, 12);
  const got = await Promise.all(batch.map(([path, body]) => request(router, 'POST', path, body)));
  got.forEach((r, i) => check(`case ${i} concurrent`, essence(r, batch[i][2]), want[i]));
  if (!bad) console.log(`ok: ${batch.length} concurrent requests through the router equal the colocated server's`);
  process.exit(bad ? 1 : 0);
}

async function badInput(router, both) {
  const big = '{"prompt": "' + 'a'.repeat(2 << 20) + '"}';
  const list = [
    ['POST', '/v1/completions', '{"prompt": 5}'], ['POST', '/v1/completions', 'not json'],
    ['POST', '/v1/completions', '{"model": "nope", "prompt": "a"}'], ['POST', '/v1/completions', '{}'],
    ['POST', '/v1/completions', '{"prompt": "a", "max_tokens": -1}'],
    ['POST', '/v1/completions', '{"prompt": "a", "temperature": "hot"}'],
    ['POST', '/v1/completions', '{"prompt": [999999999]}'],
    ['POST', '/v1/completions', '{"prompt": "a", "max_tokens": 100000, "temperature": 0}'],
    ['POST', '/v1/completions', JSON.stringify({prompt: 'word '.repeat(400)})],
    ['POST', '/v1/completions', Buffer.from([0x7b, 0x22, 0x70, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])],
    ['POST', '/v1/chat/completions', '{"messages": []}'],
    ['POST', '/v1/chat/completions', '{"messages": [{"role": "wizard", "content": "x"}]}'],
    ['POST', '/v1/completions', big], ['GET', '/nope', undefined], ['POST', '/v1/nope', '{}'],
    ['GET', '/v1/models/unknown', undefined], ['GET', '/v1/models', undefined],
    ['POST', '/tokenize', '{"prompt": 3}'], ['POST', '/detokenize', '{"tokens": [-1]}'],
    ['POST', '/tokenize', '{"prompt": "Hello world"}'],
  ];
  let bad = 0;
  for (const [method, path, body] of list) {
    const r = await request(router, method, path, body);
    const s = await request(both, method, path, body);
    // Successful answers differ in their id and creation time only.
    const strip = (body) => body.replace(/"created":\d+,"id":"[a-z]+-[0-9a-f]+",/, '');
    if (r.status !== s.status || strip(r.body) !== strip(s.body)) {
      bad += 1;
      console.log(`FAIL: ${method} ${path} ${String(body).slice(0, 60)}: router ${r.status} ${r.body.slice(0, 200)}; server ${s.status} ${s.body.slice(0, 200)}`);
    }
  }
  console.log(`ok: ${list.length - bad} of ${list.length} bad or plain requests answered by the router as by the server`);
  process.exit(bad ? 1 : 0);
}

async function streams(router, n, tokens) {
  const start = Date.now();
  const runs = [];
  for (let i = 0; i < n; i += 1) {
    runs.push(request(router, 'POST', '/v1/completions', {
      prompt: `Stream number ${i}`, max_tokens: tokens, temperature: 0, stream: true, ignore_eos: true,
    }).then((r) => {
      const events = r.body.split('\n\n').filter((e) => e.startsWith('data: '));
      let text = '', error = null;
      for (const e of events) {
        if (e === 'data: [DONE]') continue;
        const j = JSON.parse(e.slice(6));
        if (j.error) error = j.error; else text += j.choices[0].text;
      }
      return {i, status: r.status, text, done: events[events.length - 1] === 'data: [DONE]',
              error, ms: Date.now() - start};
    }));
  }
  for (const r of await Promise.all(runs)) console.log(JSON.stringify(r));
}

if (mode === 'equal') equal(+a, +b);
else if (mode === 'bad') badInput(+a, +b);
else if (mode === 'streams') streams(+a, +b, +c);
else { console.log('usage: equal|bad|streams ...'); process.exit(2); }
