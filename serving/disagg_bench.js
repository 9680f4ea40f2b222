// A mixed load for //serving:disagg_bench: `short` closed-loop clients stream short prompts with
// long outputs (the decodes), while long prompts with short outputs arrive at a fixed rate (the
// prefills). Prints one JSON object: TTFT and inter-token latency percentiles per class, and
// output tokens per second.
// Usage: node disagg_bench.js PORT SECONDS SHORT_CLIENTS LONG_PER_SECOND LONG_PROMPT_TOKENS
'use strict';
const http = require('http');
const [port, seconds, shortClients, longRate, longTokens] = process.argv.slice(2).map(Number);
const agent = new http.Agent({keepAlive: true, maxSockets: 256});

let seed = 12345;
function ids(n) {
  const out = [];
  for (let i = 0; i < n; i += 1) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    out.push(100 + (seed % 400));
  }
  return out;
}

// Streams one request; resolves with the arrival times of its tokens (ms since it was sent).
function stream(prompt, maxTokens) {
  return new Promise((resolve) => {
    const body = Buffer.from(JSON.stringify({prompt, max_tokens: maxTokens, temperature: 0,
                                             ignore_eos: true, stream: true}));
    const t0 = performance.now();
    const times = [];
    let pending = '';
    const req = http.request({host: '127.0.0.1', port, method: 'POST', path: '/v1/completions', agent,
                              headers: {'Content-Type': 'application/json', 'Content-Length': body.length}},
                             (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        pending += chunk;
        let i;
        while ((i = pending.indexOf('\n\n')) >= 0) {
          const event = pending.slice(0, i);
          pending = pending.slice(i + 2);
          if (event.startsWith('data: {') && event.includes('"choices":[{')) times.push(performance.now() - t0);
        }
      });
      res.on('end', () => resolve({status: res.statusCode, times}));
    });
    req.on('error', () => resolve({status: 0, times}));
    req.end(body);
  });
}

function pct(values, p) {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return +s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2);
}

async function main() {
  const end = performance.now() + seconds * 1000;
  const shortTtft = [], shortItl = [], longTtft = [];
  let tokens = 0, failed = 0;
  const record = (r, ttft, itl) => {
    if (r.status !== 200 || r.times.length === 0) { failed += 1; return; }
    tokens += r.times.length;
    ttft.push(r.times[0]);
    if (itl) for (let i = 1; i < r.times.length; i += 1) itl.push(r.times[i] - r.times[i - 1]);
  };
  const clients = [];
  for (let c = 0; c < shortClients; c += 1) {
    clients.push((async () => {
      while (performance.now() < end) record(await stream(ids(16), 96), shortTtft, shortItl);
    })());
  }
  const longs = [];
  const start = performance.now();
  for (let k = 0; performance.now() < end; k += 1) {
    const due = start + (k * 1000) / longRate;
    await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
    if (performance.now() >= end) break;
    longs.push(stream(ids(longTokens), 8).then((r) => record(r, longTtft, null)));
  }
  await Promise.all(clients.concat(longs));
  const elapsed = (performance.now() - start) / 1000;
  console.log(JSON.stringify({
    short_ttft_p50: pct(shortTtft, 50), short_ttft_p99: pct(shortTtft, 99),
    itl_p50: pct(shortItl, 50), itl_p99: pct(shortItl, 99), itl_max: pct(shortItl, 100),
    long_ttft_p50: pct(longTtft, 50), long_ttft_p99: pct(longTtft, 99),
    short_requests: shortTtft.length, long_requests: longTtft.length, failed,
    output_tokens_per_s: +(tokens / elapsed).toFixed(1),
  }));
}
main();
