#!/usr/bin/env bash
# The real server binary against real clients: a seeded checkpoint from //tools:init_checkpoint
# (the main job's model shape), the server on a free port; /health 503 while loading then 200;
# curl for completions, chat, streaming (SSE ending with [DONE]), errors, /tokenize and
# /detokenize; the official `openai` npm SDK run by node (completions, chat, streaming, logprobs,
# errors, 64 concurrent streaming clients equal to each alone, a client that disconnects);
# 256 malformed requests; promtool check metrics; bounded memory; flag errors; SIGTERM.
#
# Needs node, the openai package (tools/setup.sh installs it into third_party/npm/openai, found
# through this script's real path or $DSMOE_NODE_MODULES) and promtool (Debian's prometheus).
set -euo pipefail

runfiles="${TEST_SRCDIR:-$0.runfiles}/dsmoe"
server="$runfiles/serving/server"
init="$runfiles/tools/init_checkpoint"
rebalance="$runfiles/eplb/rebalance"
source_dir="$(dirname "$(readlink -f "$0")")"
node_modules="${DSMOE_NODE_MODULES:-$source_dir/../third_party/npm/openai/node_modules}"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"

fail() { echo "FAIL: $*"; exit 1; }
command -v node >/dev/null || fail "node is not installed (run tools/setup.sh)"
[[ -d "$node_modules/openai" ]] || fail "$node_modules has no openai package (run tools/setup.sh)"
command -v promtool >/dev/null || fail "promtool is not installed (run tools/setup.sh)"

"$init" --config="$runfiles/serving/testdata/tiny_cpu.textproto" \
  --tokenizer="$runfiles/model/tokenizer/testdata/tiny_tokenizer.json" \
  --output="$tmp/ckpt" --seed=1 --init_std=0.2

# Flag errors are one line and exit 1; --help exits 0.
"$server" --help >/dev/null || fail "--help"
for bad in "" "--model=$tmp/ckpt --port=70000" "--model=/nonexistent --port=0" \
           "--model=$tmp/ckpt --max_batch_tokens=0 --port=0" "--model=$tmp/ckpt --kv_cache_mb=-1" \
           "--model=$tmp/ckpt --ep=3 --port=0"; do
  if "$server" $bad > "$tmp/err" 2>&1; then fail "server $bad should fail"; fi
  [[ $(wc -l < "$tmp/err") -eq 1 ]] || { cat "$tmp/err"; fail "server $bad: not one line"; }
  echo "ok: server $bad -> $(cat "$tmp/err")"
done

"$server" --model="$tmp/ckpt" --port=0 --port_file="$tmp/port" --debug_load_delay_ms=1500 \
  --kv_cache_mb=16 --trace_steps=5 --trace_path="$tmp/trace.json" \
  --ep=2 --num_redundant_experts=2 --eplb_interval=8 > "$tmp/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
port=$(cat "$tmp/port")
base="http://127.0.0.1:$port"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/health")
[[ "$code" == 503 ]] || fail "/health while loading: $code"
echo "ok: /health 503 while loading"
for _ in $(seq 300); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' "$base/health") == 200 ]] && break
  sleep 0.1
done
[[ $(curl -s -o /dev/null -w '%{http_code}' "$base/health") == 200 ]] || fail "never healthy"
echo "ok: /health 200 once loaded"

json() { node -e "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>{const j=JSON.parse(d);console.log($1)})"; }

out=$(curl -sf "$base/v1/completions" -H 'Content-Type: application/json' \
  -d '{"model": "tiny-cpu", "prompt": "Hello", "max_tokens": 5, "temperature": 0, "ignore_eos": true}')
[[ $(echo "$out" | json 'j.usage.completion_tokens') == 5 ]] || fail "completion: $out"
echo "ok: curl completion"
stream=$(curl -sfN "$base/v1/completions" \
  -d '{"prompt": "Hello", "max_tokens": 5, "temperature": 0, "stream": true, "ignore_eos": true}')
[[ $(echo "$stream" | grep -c '^data: ') -ge 2 ]] || fail "stream: $stream"
[[ $(echo "$stream" | grep '^data: ' | tail -1) == 'data: [DONE]' ]] || fail "no [DONE]: $stream"
streamed=$(echo "$stream" | grep '^data: {' | sed 's/^data: //' |
  node -e "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>console.log(d.trim().split('\n').map(l=>JSON.parse(l).choices[0].text).join('')))")
[[ "$streamed" == "$(echo "$out" | json 'j.choices[0].text')" ]] || fail "streamed text differs"
echo "ok: curl streaming (SSE, data: [DONE]) equals the plain completion"
chat=$(curl -sf "$base/v1/chat/completions" \
  -d '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0}')
[[ $(echo "$chat" | json 'j.choices[0].message.role') == assistant ]] || fail "chat: $chat"
echo "ok: curl chat"
code=$(curl -s -o "$tmp/e" -w '%{http_code}' "$base/v1/completions" -d '{"prompt": 5}')
[[ "$code" == 400 && $(json 'j.error.param' < "$tmp/e") == prompt ]] || fail "400: $(cat "$tmp/e")"
code=$(curl -s -o "$tmp/e" -w '%{http_code}' "$base/v1/completions" -d '{"model": "x", "prompt": "a"}')
[[ "$code" == 404 && $(json 'j.error.code' < "$tmp/e") == model_not_found ]] || fail "404 model"
echo "ok: curl errors"
ids=$(curl -sf "$base/tokenize" -d '{"prompt": "Hello world"}' | json 'JSON.stringify(j.tokens)')
text=$(curl -sf "$base/detokenize" -d "{\"tokens\": $ids}" | json 'j.prompt')
[[ "$text" == "Hello world" ]] || fail "tokenize/detokenize: $ids -> $text"
echo "ok: /tokenize and /detokenize"

node "$source_dir/openai_client_test.js" "$node_modules" "$base" tiny-cpu
rss_before=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
node "$source_dir/bad_requests_test.js" 127.0.0.1 "$port" tiny-cpu
node "$source_dir/openai_client_test.js" "$node_modules" "$base" tiny-cpu > /dev/null
rss_after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
echo "RSS: ${rss_before} kB after the first client run, ${rss_after} kB after 256 bad requests and another"
(( rss_after < rss_before + 102400 )) || fail "memory grew by more than 100 MB"
echo "ok: memory bounded"

curl -sf "$base/metrics" > "$tmp/metrics"
promtool check metrics < "$tmp/metrics" || fail "promtool check metrics"
for m in dsmoe_num_requests_running dsmoe_num_requests_waiting dsmoe_kv_cache_usage_perc \
         dsmoe_prompt_tokens_total dsmoe_generation_tokens_total dsmoe_request_success_total \
         dsmoe_time_to_first_token_seconds_bucket dsmoe_inter_token_latency_seconds_bucket \
         dsmoe_e2e_request_latency_seconds_bucket dsmoe_eplb_balancedness \
         dsmoe_eplb_rebalances_total dsmoe_eplb_expert_bytes_moved_total; do
  grep -q "^$m" "$tmp/metrics" || fail "/metrics lacks $m"
done
grep -q 'dsmoe_request_success_total{finished_reason="abort"} [1-9]' "$tmp/metrics" ||
  fail "the disconnected client's request was not aborted"
echo "ok: promtool check metrics; a disconnected stream was aborted"
[[ -s "$tmp/trace.json" ]] && grep -q '"prefill' "$tmp/trace.json" || fail "no trace of steps"
echo "ok: --trace_steps wrote a Chrome trace"

kill -TERM $pid
wait $pid || fail "server exit status $?"
grep -q "server: stopped" "$tmp/server.log" || fail "no clean stop"
echo "ok: SIGTERM stops the server"

# A slow server (each step sleeps 30 ms) with a queue of 2 and an initial placement written by
# //eplb:rebalance: outputs equal the first server's; a non-streaming client that gives up cancels
# its request; a full queue is 429.
printf '9,1,1,1,1,1,1,1\n1,1,1,1,1,1,1,9\n1,1,9,9,1,1,1,1\n' > "$tmp/loads.csv"
"$rebalance" --loads="$tmp/loads.csv" --num_replicas=10 --num_groups=4 --num_nodes=1 \
  --num_gpus=2 --format=json > "$tmp/placement.json"
"$server" --model="$tmp/ckpt" --port=0 --port_file="$tmp/port2" --debug_step_delay_ms=30 \
  --max_waiting=2 --max_running=1 --ep=2 --num_redundant_experts=2 \
  --eplb_placement="$tmp/placement.json" > "$tmp/server2.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  [[ -s "$tmp/port2" ]] && [[ $(curl -s -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$(cat "$tmp/port2")/health") == 200 ]] && break
  sleep 0.1
done
base="http://127.0.0.1:$(cat "$tmp/port2")"
again=$(curl -sf "$base/v1/completions" -H 'Content-Type: application/json' \
  -d '{"model": "tiny-cpu", "prompt": "Hello", "max_tokens": 5, "temperature": 0, "ignore_eos": true}')
[[ $(echo "$again" | json 'j.choices[0].text') == $(echo "$out" | json 'j.choices[0].text') ]] ||
  fail "the //eplb:rebalance placement changed the output: $again vs $out"
echo "ok: an initial placement from //eplb:rebalance's JSON serves the same output"
# 120 tokens take at least 3.6 s; the client leaves after 0.5 s and the server notices at its
# second heartbeat (about 2 s in).
curl -s --max-time 0.5 "$base/v1/completions" \
  -d '{"prompt": "x", "max_tokens": 120, "ignore_eos": true}' > /dev/null && fail "no timeout"
for _ in $(seq 40); do
  metrics=$(curl -sf "$base/metrics")
  echo "$metrics" | grep -q 'dsmoe_request_success_total{finished_reason="abort"} 1' && break
  sleep 0.1
done
echo "$metrics" | grep -q 'dsmoe_request_success_total{finished_reason="abort"} 1' ||
  fail "a non-streaming client that gave up was not cancelled"
echo "$metrics" | grep -q 'dsmoe_request_success_total{finished_reason="length"} 1$' ||
  fail "the cancelled request ran to its end"
echo "$metrics" | grep -q '^dsmoe_kv_cache_usage_perc 0$' || fail "KV blocks not freed"
echo "ok: a non-streaming client that disconnects cancels its request and frees its blocks"
codes=""
for i in 1 2 3 4 5 6; do
  curl -s -o /dev/null -w '%{http_code}\n' "$base/v1/completions" \
    -d '{"prompt": "x", "max_tokens": 8, "ignore_eos": true}' > "$tmp/code$i" &
done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
codes=$(cat "$tmp"/code[1-6] | sort | uniq -c | tr -s ' ' | tr '\n' ';')
grep -q 429 "$tmp"/code[1-6] || fail "no 429 from a full queue: $codes"
grep -q 200 "$tmp"/code[1-6] || fail "no request served: $codes"
echo "ok: a full queue answers 429 ($codes)"
kill -TERM $pid
wait $pid || fail "second server exit status $?"
trap - EXIT
echo "PASS"
