#!/usr/bin/env bash
# Prefill/decode disaggregation with real processes started separately (the bootstrap form): a
# router, prefill and decode instances that register with it through --router, and a colocated
# server (--role=both) as the reference.
# - Outputs through the router equal the colocated server's (greedy, seeded sampling, chat,
#   streaming, n, logprobs; one at a time and concurrently); every transfer's blocks matched the
#   sender's checksum (a mismatch fails the request); bad input is answered as the server answers.
# - /metrics of the instances show the transfers (done, bytes, seconds; promtool checks the text).
# - kill -9 of a decode instance mid-stream: its streams end with an error event (or 503), the other
#   instance's streams finish with the right text, /health of the router reports the dead one,
#   new requests are served.
# - A stalled prefill instance (SIGSTOP): its requests fail with 503 within the KV deadline, the
#   decode instance frees their blocks, the router marks it down, and a prefill instance that
#   joins then serves.
# - A client that leaves a stream through the router cancels its request on the decode instance.
# - A stalled decode instance: its request in flight is answered 503 after the router's upstream
#   timeout, /health turns 503 (no decode left), and it serves again once resumed.
set -euo pipefail

runfiles="${TEST_SRCDIR:-$0.runfiles}/dsmoe"
server="$runfiles/serving/server"
init="$runfiles/tools/init_checkpoint"
client="$runfiles/serving/disagg_client.js"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*"; for f in "$tmp"/*.log; do echo "== $f"; tail -5 "$f"; done; exit 1; }
command -v node >/dev/null || fail "node is not installed (run tools/setup.sh)"

"$init" --config="$runfiles/serving/testdata/tiny_cpu.textproto" \
  --tokenizer="$runfiles/model/tokenizer/testdata/tiny_tokenizer.json" \
  --output="$tmp/ckpt" --seed=1 --init_std=0.2 > /dev/null

# Flag errors of the roles are one line and exit 1.
for bad in "--role=x" "--layout=prefill:0,decode:1 --model=$tmp/ckpt" \
           "--layout=prefill:1,decode:1 --model=$tmp/ckpt" "--role=decode --router=ftp://x --model=$tmp/ckpt" \
           "--router=http://127.0.0.1:1 --model=$tmp/ckpt" "--role=router --instance_timeout_ms=5" \
           "--role=prefill --kv_timeout_ms=0 --model=$tmp/ckpt"; do
  if "$server" $bad --port=0 > "$tmp/err" 2>&1; then fail "server $bad should fail"; fi
  [[ $(wc -l < "$tmp/err") -eq 1 ]] || { cat "$tmp/err"; fail "server $bad: not one line"; }
done
echo "ok: bad role flags are one line and exit status 1"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start() {  # NAME ARGS...: starts the server binary in the background, its port in $tmp/NAME.port
  local name=$1
  shift
  "$server" --port=0 --port_file="$tmp/$name.port" "$@" > "$tmp/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
}
port() { for _ in $(seq 100); do [[ -s "$tmp/$1.port" ]] && break; sleep 0.1; done; cat "$tmp/$1.port"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
json() { node -e "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>{const j=JSON.parse(d);console.log($1)})"; }

start router --role=router --instance_timeout_ms=1000 --upstream_timeout_ms=4000
router=$(port router)
R="http://127.0.0.1:$router"
common=(--model="$tmp/ckpt" --threads=1 --kv_cache_mb=8)
start both "${common[@]}"
start prefill1 "${common[@]}" --role=prefill --router="$R" --kv_timeout_ms=3000
start decode1 "${common[@]}" --role=decode --router="$R" --kv_timeout_ms=3000 --debug_step_delay_ms=5
start decode2 "${common[@]}" --role=decode --router="$R" --kv_timeout_ms=3000 --debug_step_delay_ms=5
both=$(port both)
for _ in $(seq 300); do
  [[ $(code "$R/health") == 200 && $(code "http://127.0.0.1:$both/health") == 200 ]] &&
    [[ $(curl -s "$R/health" | json 'j.instances.filter(i=>i.state=="up").length') == 3 ]] && break
  sleep 0.1
done
[[ $(code "$R/health") == 200 ]] || fail "the router never became healthy: $(curl -s "$R/health")"
echo "ok: the router found 1 prefill and 2 decode instances through --router"

node "$client" equal "$router" "$both" || fail "outputs differ"
node "$client" bad "$router" "$both" || fail "bad input answered differently"

for name in decode1 decode2 prefill1; do
  curl -sf "http://127.0.0.1:$(port $name)/metrics" > "$tmp/$name.metrics"
  if command -v promtool >/dev/null; then
    promtool check metrics < "$tmp/$name.metrics" || fail "promtool: $name"
  fi
done
curl -sf "$R/metrics" > "$tmp/router.metrics"
if command -v promtool >/dev/null; then promtool check metrics < "$tmp/router.metrics" || fail "promtool: router"; fi
done_total=0
for name in decode1 decode2; do
  grep -q '^dsmoe_kv_transfers_total{state="failed"} 0$' "$tmp/$name.metrics" || fail "$name: failed transfers"
  d=$(awk '/^dsmoe_kv_transfers_total\{state="done"\}/ {print $2}' "$tmp/$name.metrics")
  (( d > 0 )) || fail "$name served no transfer (least loaded should spread them)"
  grep -q '^dsmoe_kv_transfer_received_bytes_total [1-9]' "$tmp/$name.metrics" || fail "$name: no bytes"
  grep -q '^dsmoe_kv_transfer_seconds_count [1-9]' "$tmp/$name.metrics" || fail "$name: no times"
  grep -q '^dsmoe_kv_cache_usage_perc 0$' "$tmp/$name.metrics" || fail "$name: blocks left in use"
  done_total=$((done_total + d))
done
grep -q '^dsmoe_kv_transfer_sent_bytes_total [1-9]' "$tmp/prefill1.metrics" || fail "prefill sent nothing"
grep -q '^dsmoe_kv_outbox_requests 0$' "$tmp/prefill1.metrics" || fail "pages left in the outbox"
echo "ok: $done_total transfers done, every one's blocks equal to those sent (checksums), none failed; metrics pass promtool"

# kill -9 of a decode instance mid-stream. 8 streams of 150 tokens (5 ms a step: over a second)
# spread over the two decode instances; decode2 dies once both instances are decoding.
node "$client" streams "$router" 8 150 > "$tmp/streams" &
streams=$!
running() { curl -s "http://127.0.0.1:$(port "$1")/metrics" | awk '/^dsmoe_num_requests_running / {print $2}'; }
for _ in $(seq 100); do
  (( $(running decode1) > 0 && $(running decode2) > 0 )) && break
  sleep 0.05
done
kill -9 "$pid_decode2"
wait $streams || fail "the stream client failed"
cat "$tmp/streams"
want=$(curl -sf "http://127.0.0.1:$both/v1/completions" \
  -d '{"prompt": "Stream number 0", "max_tokens": 150, "temperature": 0, "ignore_eos": true}' | json 'j.choices[0].text')
finished=0; broken=0
while read -r line; do
  if [[ $(echo "$line" | json 'j.done') == true ]]; then
    finished=$((finished + 1))
    i=$(echo "$line" | json 'j.i')
    w=$(curl -sf "http://127.0.0.1:$both/v1/completions" \
      -d "{\"prompt\": \"Stream number $i\", \"max_tokens\": 150, \"temperature\": 0, \"ignore_eos\": true}" | json 'j.choices[0].text')
    [[ $(echo "$line" | json 'j.text') == "$w" ]] || fail "stream $i finished with another text"
  else
    broken=$((broken + 1))
    # An error event once streaming, or a 503 when it died before answering.
    [[ $(echo "$line" | json 'j.status == 503 || (j.error && j.error.type)') =~ ^(true|service_unavailable)$ ]] ||
      fail "a broken stream without an error event or 503: $line"
    (( $(echo "$line" | json 'j.ms') < 5000 )) || fail "the error came late: $line"
  fi
done < "$tmp/streams"
(( finished > 0 && broken > 0 )) || fail "want streams on both instances: $finished finished, $broken broken"
echo "ok: killing a decode instance mid-stream: its $broken streams ended with an error event (or 503), the other $finished finished with the colocated server's text"
health=$(curl -s "$R/health")
d2="http://127.0.0.1:$(port decode2)"
[[ $(echo "$health" | json "j.instances.find(i=>i.url=='$d2').state") == down ]] ||
  fail "the router does not report $d2 down: $health"
[[ $(code "$R/health") == 200 ]] || fail "the router is not healthy with one decode instance left"
node "$client" equal "$router" "$both" > /dev/null || fail "outputs differ after the kill"
echo "ok: /health reports the dead decode instance; the router keeps serving with the other"

# A stalled prefill instance (SIGSTOP, the only one): requests on it fail with 503 naming it within
# the KV deadline, the decode instance frees their blocks and the router marks it down; a second
# prefill instance that joins then serves.
kill -STOP "$pid_prefill1"
for i in 1 2; do
  curl -s -o "$tmp/stall$i" -w '%{http_code} %{time_total}\n' "$R/v1/completions" \
    -d '{"prompt": "Hello", "max_tokens": 4, "temperature": 0}' > "$tmp/stall$i.code" &
done
wait $(jobs -p | grep -v -w -F "$(printf '%s\n' "${pids[@]}")") 2>/dev/null || true
for i in 1 2; do
  read -r c secs < "$tmp/stall$i.code"
  [[ "$c" == 503 ]] || fail "a request on the stalled prefill instance: $c $(cat "$tmp/stall$i")"
  awk -v s="$secs" 'BEGIN {exit !(s < 6)}' || fail "a 503 after $secs s"
  grep -q 'prefill instance' "$tmp/stall$i" || fail "503 without naming the prefill: $(cat "$tmp/stall$i")"
  echo "stalled prefill: 503 in $secs s: $(cat "$tmp/stall$i")"
done
health=$(curl -s "$R/health")
p1="http://127.0.0.1:$(port prefill1)"
[[ $(echo "$health" | json "j.instances.find(i=>i.url=='$p1').state") == down ]] ||
  fail "the router does not report the stalled $p1 down: $health"
m=$(curl -sf "http://127.0.0.1:$(port decode1)/metrics")
echo "$m" | grep -q '^dsmoe_kv_transfers_total{state="failed"} [1-9]' || fail "no failed transfer counted"
echo "$m" | grep -q '^dsmoe_kv_cache_usage_perc 0$' || fail "the failed requests' blocks were not freed"
start prefill2 "${common[@]}" --role=prefill --router="$R" --kv_timeout_ms=3000
for _ in $(seq 300); do [[ $(code "$R/health") == 200 ]] && break; sleep 0.1; done
for i in 1 2 3; do
  [[ $(code "$R/v1/completions" -d '{"prompt": "Hello", "max_tokens": 4}') == 200 ]] ||
    fail "not served by the second prefill instance"
done
echo "ok: a stalled prefill instance: 503 within the KV deadline, blocks freed, marked down; another one serves"
kill -CONT "$pid_prefill1"

# A client that leaves a stream through the router cancels its request on the decode instance.
d1="http://127.0.0.1:$(port decode1)"
aborts() { curl -sf "$d1/metrics" | awk '/^dsmoe_request_success_total\{finished_reason="abort"\}/ {print $2}'; }
before=$(aborts)
curl -sN --max-time 0.3 "$R/v1/completions" \
  -d '{"prompt": "Go on", "max_tokens": 120, "stream": true, "ignore_eos": true}' > /dev/null || true
for _ in $(seq 50); do (( $(aborts) > before )) && break; sleep 0.1; done
(( $(aborts) > before )) || fail "a client that left through the router did not cancel its request"
echo "ok: a client that leaves a stream through the router cancels its request on the decode instance"

# A stalled decode instance (SIGSTOP; the last one): the request in flight on it is answered 503
# after --upstream_timeout_ms, then it is marked down and new requests get 503 at once; it serves
# again once it resumes.
kill -STOP "$pid_decode1"
read -r c secs < <(curl -s -o "$tmp/dstall" -w '%{http_code} %{time_total}\n' "$R/v1/completions" \
  -d '{"prompt": "Hello", "max_tokens": 4, "temperature": 0}')
[[ "$c" == 503 ]] || fail "a request on a stalled decode instance: $c $(cat "$tmp/dstall")"
awk -v s="$secs" 'BEGIN {exit !(s < 8)}' || fail "the 503 came after $secs s"
stalled_secs=$secs
[[ $(code "$R/health") == 503 ]] || fail "/health with no decode instance up: $(curl -s "$R/health")"
read -r c secs < <(curl -s -o "$tmp/dstall" -w '%{http_code} %{time_total}\n' "$R/v1/completions" \
  -d '{"prompt": "Hello", "max_tokens": 4}')
[[ "$c" == 503 ]] && grep -q "no decode instance is up" "$tmp/dstall" || fail "no decode up: $c"
echo "ok: a stalled decode instance: its request answered 503 in $stalled_secs s, then marked down"
kill -CONT "$pid_decode1"
for _ in $(seq 50); do [[ $(code "$R/health") == 200 ]] && break; sleep 0.1; done
[[ $(code "$R/v1/completions" -d '{"prompt": "Hello", "max_tokens": 4}') == 200 ]] ||
  fail "not served after the decode instance resumed"
echo "ok: the resumed decode instance serves again"
echo "PASS"
