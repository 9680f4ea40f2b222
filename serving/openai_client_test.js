// The official `openai` npm SDK against the real server: completions, chat, streaming, logprobs,
// errors, and 64 concurrent streaming clients whose outputs equal what each gets alone.
// Usage: node openai_client_test.js NODE_MODULES BASE_URL MODEL
'use strict';
const path = require('path');
const [nodeModules, baseURL, model] = process.argv.slice(2);
const OpenAI = require(path.join(nodeModules, 'openai')).default;
const client = new OpenAI({apiKey: 'unused', baseURL: baseURL + '/v1', maxRetries: 0});

let failures = 0;
function check(cond, what) {
  if (!cond) {
    failures++;
    console.log('FAIL: ' + what);
  } else {
    console.log('ok: ' + what);
  }
}

async function streamCompletion(prompt, maxTokens) {
  const stream = await client.completions.create(
      {model, prompt, max_tokens: maxTokens, temperature: 0, stream: true, ignore_eos: true});
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0].text;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  return {text, finish};
}

async function main() {
  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].id === model, 'models.list names the model');

  const c = await client.completions.create(
      {model, prompt: 'The answer is', max_tokens: 7, temperature: 0, ignore_eos: true});
  check(c.object === 'text_completion' && c.choices.length === 1, 'completion shape');
  check(c.choices[0].finish_reason === 'length', 'completion finishes by length');
  check(c.usage.completion_tokens === 7 && c.usage.prompt_tokens > 0, 'completion usage');
  const again = await client.completions.create(
      {model, prompt: 'The answer is', max_tokens: 7, temperature: 0, ignore_eos: true});
  check(again.choices[0].text === c.choices[0].text, 'greedy completion is deterministic');

  const s = await streamCompletion('The answer is', 7);
  check(s.text === c.choices[0].text && s.finish === 'length', 'streamed completion equals it');

  const seeded = async () => (await client.completions.create({
    model, prompt: 'Once', max_tokens: 10, temperature: 0.8, top_p: 0.9, seed: 42, ignore_eos: true,
  })).choices[0].text;
  check(await seeded() === await seeded(), 'seeded sampling is reproducible');

  const lp = await client.completions.create(
      {model, prompt: 'Hi', max_tokens: 3, temperature: 0, logprobs: 2, ignore_eos: true});
  const l = lp.choices[0].logprobs;
  check(l && l.tokens.length === 3 && l.token_logprobs.length === 3 && l.top_logprobs.length === 3,
        'completion logprobs');
  check(l.token_logprobs.every((x) => x <= 0), 'logprobs are <= 0');

  const chat = await client.chat.completions.create({
    model,
    messages: [{role: 'system', content: 'Be brief.'}, {role: 'user', content: 'Hello!'}],
    max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2,
  });
  check(chat.object === 'chat.completion' && chat.choices[0].message.role === 'assistant',
        'chat shape');
  check(chat.usage.completion_tokens >= 1 && chat.usage.completion_tokens <= 6, 'chat usage');
  check(chat.choices[0].logprobs.content.length === chat.usage.completion_tokens,
        'chat logprobs per token');

  const chatStream = await client.chat.completions.create({
    model, messages: [{role: 'user', content: 'Hello!'}], max_tokens: 6, temperature: 0,
    stream: true, stream_options: {include_usage: true},
  });
  let content = '';
  let role = null;
  let usage = null;
  for await (const chunk of chatStream) {
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    if (chunk.choices[0].delta.role) role = chunk.choices[0].delta.role;
    content += chunk.choices[0].delta.content || '';
  }
  const chatPlain = await client.chat.completions.create(
      {model, messages: [{role: 'user', content: 'Hello!'}], max_tokens: 6, temperature: 0});
  check(role === 'assistant' && content === chatPlain.choices[0].message.content,
        'streamed chat equals the plain one');
  check(usage && usage.completion_tokens === chatPlain.usage.completion_tokens,
        'stream_options.include_usage');

  const stop = await client.completions.create({
    model, prompt: 'The answer is', max_tokens: 7, temperature: 0, ignore_eos: true,
    stop: [c.choices[0].text.slice(2, 4)],
  });
  check(stop.choices[0].finish_reason === 'stop' &&
        stop.choices[0].text === c.choices[0].text.slice(0, c.choices[0].text.indexOf(c.choices[0].text.slice(2, 4))),
        'stop string ends the text before it');

  // n, several prompts, echo, and n with streaming.
  const two = await client.completions.create(
      {model, prompt: 'Once', max_tokens: 6, temperature: 0.8, seed: 5, n: 2, ignore_eos: true});
  check(two.choices.length === 2 && two.choices[0].index === 0 && two.choices[1].index === 1 &&
        two.usage.completion_tokens === 12, 'n = 2 gives two choices');
  const batch = await client.completions.create(
      {model, prompt: ['The answer is', 'Once'], max_tokens: 7, temperature: 0, ignore_eos: true});
  check(batch.choices.length === 2 && batch.choices[0].text === c.choices[0].text,
        'a list of prompts gives a choice per prompt, in order');
  const echo = await client.completions.create(
      {model, prompt: 'The answer is', max_tokens: 7, temperature: 0, echo: true, ignore_eos: true});
  check(echo.choices[0].text === 'The answer is' + c.choices[0].text, 'echo puts the prompt first');
  const nStream = await client.completions.create(
      {model, prompt: 'Once', max_tokens: 5, n: 3, stream: true, ignore_eos: true});
  const finished = new Set();
  for await (const chunk of nStream) {
    for (const ch of chunk.choices) if (ch.finish_reason) finished.add(ch.index);
  }
  check(finished.size === 3, 'n = 3 streams three choices to their end');

  for (const [what, body, status] of [
    ['negative max_tokens', {model, prompt: 'x', max_tokens: -5}, 400],
    ['temperature out of range', {model, prompt: 'x', temperature: 9}, 400],
    ['unknown model', {model: 'no-such-model', prompt: 'x'}, 404],
    ['prompt longer than the context', {model, prompt: 'word '.repeat(400)}, 400],
  ]) {
    try {
      await client.completions.create(body);
      check(false, what + ' is refused');
    } catch (e) {
      check(e.status === status && e.error && typeof e.error.message === 'string',
            what + ' is ' + status + ' with an OpenAI error (' + (e.error && e.error.message) + ')');
    }
  }
  try {
    await client.chat.completions.create({model, messages: []});
    check(false, 'empty messages are refused');
  } catch (e) {
    check(e.status === 400, 'empty messages are 400');
  }

  // 64 concurrent streaming clients each get what they get alone.
  const prompts = [];
  for (let i = 0; i < 64; i++) prompts.push('Client ' + i + ' says' + ' hello'.repeat(i % 7));
  const alone = [];
  for (const i of [0, 13, 63]) alone.push([i, (await streamCompletion(prompts[i], 12)).text]);
  const together = await Promise.all(prompts.map((p) => streamCompletion(p, 12)));
  check(together.every((r) => r.finish === 'length'), '64 concurrent streams all finish');
  for (const [i, text] of alone) {
    check(together[i].text === text, 'concurrent client ' + i + ' equals its output alone');
  }

  // A client that goes away mid-stream: the request is cancelled.
  const controller = new AbortController();
  const long = await client.completions.create(
      {model, prompt: 'Abandoned', max_tokens: 100, temperature: 0, stream: true, ignore_eos: true},
      {signal: controller.signal});
  let got = 0;
  try {
    for await (const chunk of long) {
      if (++got === 2) controller.abort();
    }
  } catch (e) {
    // aborted
  }
  check(got >= 2, 'stream aborted by the client');
}

main().then(() => {
  console.log(failures === 0 ? 'PASS' : failures + ' FAILURES');
  process.exit(failures === 0 ? 0 : 1);
}).catch((e) => {
  console.log('FAIL: ' + e.stack);
  process.exit(1);
});
