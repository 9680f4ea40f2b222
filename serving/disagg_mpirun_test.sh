#!/usr/bin/env bash
# Prefill/decode disaggregation as one MPI job: `mpirun -np 6 server --layout=prefill:2,decode:4`
# (ranks 0-1 a prefill instance, ranks 2-5 a decode instance, each an EP group with redundant
# experts and its own online EPLB; rank 0 also runs the router). Outputs through the router equal a
# colocated server's (greedy, seeded sampling, chat, streaming, n; one at a time and concurrently),
# the KV pages moved over MPI between the instances' first ranks, each instance rebalanced its own
# placement from its own loads, and SIGTERM stops the job. Then a layout with two decode instances
# (`-np 4 --layout=prefill:1,decode:2,decode:1`); then, under `mpirun --mca orte_enable_recovery 1`,
# a decode process killed mid-stream, and an expert-only rank of a decode instance killed.
set -euo pipefail

runfiles="${TEST_SRCDIR:-$0.runfiles}/dsmoe"
server="$runfiles/serving/server"
init="$runfiles/tools/init_checkpoint"
client="$runfiles/serving/disagg_client.js"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*"; tail -20 "$tmp/mpi.log"; exit 1; }
command -v mpirun >/dev/null || fail "mpirun is not installed (run tools/setup.sh)"
command -v node >/dev/null || fail "node is not installed (run tools/setup.sh)"

"$init" --config="$runfiles/serving/testdata/tiny_cpu.textproto" \
  --tokenizer="$runfiles/model/tokenizer/testdata/tiny_tokenizer.json" \
  --output="$tmp/ckpt" --seed=1 --init_std=0.2 > /dev/null

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_mpi_yield_when_idle=1
unset XML_OUTPUT_FILE TEST_PREMATURE_EXIT_FILE
"$server" --model="$tmp/ckpt" --port=0 --port_file="$tmp/both.port" --threads=1 > "$tmp/both.log" 2>&1 &
both_pid=$!
mpirun --oversubscribe --allow-run-as-root --bind-to none -np 6 "$server" --model="$tmp/ckpt" \
  --layout=prefill:2,decode:4 --port=0 --port_file="$tmp/router.port" --threads=1 \
  --num_redundant_experts=4 --eplb_interval=6 --eplb_window=12 > "$tmp/mpi.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid $both_pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  if [[ -s "$tmp/router.port" && -s "$tmp/both.port" ]] &&
     [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$tmp/router.port")/health") == 200 ]] &&
     [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$tmp/both.port")/health") == 200 ]]; then
    break
  fi
  sleep 0.1
done
router=$(cat "$tmp/router.port")
curl -sf "http://127.0.0.1:$router/health" > "$tmp/health" || fail "the router is not healthy"

# Waits until the router of the job now starting reports $1 instances up; sets $router.
wait_router() {
  for _ in $(seq 600); do
    [[ -s "$tmp/router.port" ]] && [[ $(curl -s "http://127.0.0.1:$(cat "$tmp/router.port")/health" |
      grep -o '"state":"up"' | wc -l) == "$1" ]] && break
    sleep 0.1
  done
  router=$(cat "$tmp/router.port")
}
echo "router /health: $(cat "$tmp/health")"
node "$client" equal "$router" "$(cat "$tmp/both.port")" || fail "outputs differ"

urls=$(node -e "const j=JSON.parse(require('fs').readFileSync('$tmp/health'));
  for (const i of j.instances) console.log(i.role + ' ' + i.url)")
while read -r role url; do
  curl -sf "$url/metrics" > "$tmp/$role.metrics"
  grep -E '^dsmoe_(kv_transfers_total|kv_transfers_over_mpi_total|kv_transfer_(sent|received)_bytes_total|eplb_rebalances_total|eplb_rank_tokens_total)' "$tmp/$role.metrics" | sed "s/^/$role: /"
done <<< "$urls"
grep -q '^dsmoe_kv_transfers_total{state="failed"} 0$' "$tmp/decode.metrics" || fail "failed transfers"
done_n=$(awk '/^dsmoe_kv_transfers_total\{state="done"\}/ {print $2}' "$tmp/decode.metrics")
mpi_n=$(awk '/^dsmoe_kv_transfers_over_mpi_total/ {print $2}' "$tmp/decode.metrics")
(( done_n > 0 && mpi_n == done_n )) || fail "$done_n transfers done, $mpi_n over MPI"
sent=$(awk '/^dsmoe_kv_transfer_sent_bytes_total/ {print $2}' "$tmp/prefill.metrics")
received=$(awk '/^dsmoe_kv_transfer_received_bytes_total/ {print $2}' "$tmp/decode.metrics")
[[ "$sent" == "$received" && "$sent" != 0 ]] || fail "sent $sent bytes, received $received"
echo "ok: $done_n transfers over MPI, $sent bytes sent and received, every one checked by checksum"
grep -q '^dsmoe_eplb_rank_tokens_total{rank="1"} [1-9]' "$tmp/prefill.metrics" || fail "prefill rank 1 idle"
grep -q '^dsmoe_eplb_rank_tokens_total{rank="2"}' "$tmp/prefill.metrics" && fail "prefill has a rank 2"
grep -q '^dsmoe_eplb_rank_tokens_total{rank="3"} [1-9]' "$tmp/decode.metrics" || fail "decode rank 3 idle"
for role in prefill decode; do
  grep -q '^dsmoe_eplb_rebalances_total [1-9]' "$tmp/$role.metrics" || fail "$role never rebalanced"
done
[[ $(grep -c "serves the experts of a decode instance" "$tmp/mpi.log") == 3 ]] || fail "no 3 decode EP workers"
echo "ok: the prefill instance (2 EP ranks) and the decode instance (4) each rebalanced its own placement"
kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && fail "mpirun did not stop"

# Several instances of a role: one prefill instance, decode instances of 2 ranks and of 1; pages
# go from the one prefill rank to both decode instances over MPI.
rm -f "$tmp/router.port"
mpirun --oversubscribe --allow-run-as-root --bind-to none -np 4 "$server" --model="$tmp/ckpt" \
  --layout=prefill:1,decode:2,decode:1 --port=0 --port_file="$tmp/router.port" --threads=1 \
  > "$tmp/mpi.log" 2>&1 &
pid=$!
wait_router 3
node "$client" equal "$router" "$(cat "$tmp/both.port")" || fail "outputs differ (3 instances)"
n=0
for url in $(curl -sf "http://127.0.0.1:$router/health" | grep -o 'http://127.0.0.1:[0-9]*'); do
  m=$(curl -sf "$url/metrics")
  if echo "$m" | grep -q '^dsmoe_kv_transfers_over_mpi_total [1-9]'; then n=$((n + 1)); fi
done
(( n == 2 )) || fail "$n decode instances got pages over MPI, want 2"
echo "ok: --layout=prefill:1,decode:2,decode:1: outputs equal, both decode instances got their pages over MPI"
kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && fail "mpirun did not stop"

# A decode process killed mid-stream under mpirun. Open MPI ends the whole job when a rank dies
# unless recovery is enabled (`--mca orte_enable_recovery 1`); with it the job is not one failure
# domain: one prefill rank and two one-rank decode instances, rank 2's process gets kill -9 while
# streams run on both decode instances; its streams end with an error event (or 503), the others
# finish with the colocated server's text, the router reports it down and keeps serving.
# The process of world rank $1 under the mpirun whose pid is $pid.
rank_process() {
  for status in /proc/[0-9]*/status; do
    [[ $(awk '/^PPid:/ {print $2}' "$status" 2>/dev/null) == "$pid" ]] || continue
    local child
    child=$(basename "$(dirname "$status")")
    if tr '\0' '\n' < "/proc/$child/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$child"
    fi
  done
}
rm -f "$tmp/router.port"
mpirun --oversubscribe --allow-run-as-root --bind-to none --mca orte_enable_recovery 1 -np 3 \
  "$server" --model="$tmp/ckpt" --layout=prefill:1,decode:1,decode:1 --port=0 \
  --port_file="$tmp/router.port" --threads=1 --debug_step_delay_ms=5 > "$tmp/mpi.log" 2>&1 &
pid=$!
wait_router 3
victim=$(rank_process 2)  # a decode instance of its own
[[ -n "$victim" ]] || fail "no process of rank 2 under mpirun"
decode_urls=$(curl -sf "http://127.0.0.1:$router/health" | node -e "
  const j = JSON.parse(require('fs').readFileSync(0));
  for (const i of j.instances) if (i.role == 'decode') console.log(i.url)")
running() { curl -s "$1/metrics" | awk '/^dsmoe_num_requests_running / {print $2}'; }
both_running() {
  for url in $decode_urls; do (( $(running "$url") > 0 )) || return 1; done
}
node "$client" streams "$router" 8 150 > "$tmp/streams" &
streams=$!
for _ in $(seq 100); do
  both_running && break
  sleep 0.05
done
kill -9 "$victim"
wait $streams || fail "the stream client failed"
finished=$(grep -c '"done":true' "$tmp/streams" || true)
broken=$(grep -vc '"done":true' "$tmp/streams" || true)
(( finished > 0 && broken > 0 )) || fail "want streams on both decode instances: $finished finished, $broken broken"
json() { node -e "const j = JSON.parse(require('fs').readFileSync(0)); console.log($1)"; }
while read -r line; do
  if [[ $(echo "$line" | json '!!j.done') == true ]]; then
    i=$(echo "$line" | json 'j.i')
    want=$(curl -sf "http://127.0.0.1:$(cat "$tmp/both.port")/v1/completions" \
      -d "{\"prompt\": \"Stream number $i\", \"max_tokens\": 150, \"temperature\": 0, \"ignore_eos\": true}" |
      json 'j.choices[0].text')
    [[ $(echo "$line" | json 'j.text') == "$want" ]] || fail "stream $i finished with another text"
  else
    [[ $(echo "$line" | json 'j.status == 503 || (j.error && j.error.type) || false') =~ ^(true|service_unavailable)$ ]] ||
      fail "a broken stream without an error event or 503: $line"
  fi
done < "$tmp/streams"
kill -0 $pid 2>/dev/null || fail "mpirun ended the job when rank 2 died"
health=$(curl -sf "http://127.0.0.1:$router/health") || fail "the router is not healthy after the kill"
[[ $(echo "$health" | json "j.instances.filter((i) => i.state == 'down').map((i) => i.role).join(',')") == decode ]] ||
  fail "the router does not report exactly the one decode instance down: $health"
node "$client" equal "$router" "$(cat "$tmp/both.port")" > /dev/null || fail "outputs differ after the kill"
echo "ok: mpirun with recovery: killing decode rank 2 mid-stream broke its $broken streams with an error event (or 503), $finished finished, the router reports it down and serves on"
kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && fail "mpirun did not stop"

# An expert-only rank of a two-rank decode instance dies: the instance's first rank fails its
# step at the communicator's deadline; a stream through the router ends with an error event (no
# [DONE]), a non-streaming request gets 503, and the router marks the instance down.
rm -f "$tmp/router.port"
mpirun --oversubscribe --allow-run-as-root --bind-to none --mca orte_enable_recovery 1 -np 3 \
  "$server" --model="$tmp/ckpt" --layout=prefill:1,decode:2 --port=0 --comm_timeout=3s \
  --port_file="$tmp/router.port" --threads=1 --instance_timeout_ms=1000 > "$tmp/mpi.log" 2>&1 &
pid=$!
wait_router 2
victim=$(rank_process 2)
[[ -n "$victim" ]] || fail "no process of rank 2 under mpirun"
kill -9 "$victim"
# Both requests are in flight when the step fails (at the 3 s deadline), and one comes after.
curl -s -m 20 "http://127.0.0.1:$router/v1/completions" \
  -d '{"prompt": "Hello", "max_tokens": 8, "temperature": 0, "stream": true}' > "$tmp/stream" &
stream=$!
code=$(curl -s -m 20 -o "$tmp/answer" -w '%{http_code}' "http://127.0.0.1:$router/v1/completions" \
  -d '{"prompt": "Hello", "max_tokens": 8, "temperature": 0}')
[[ $code == 503 ]] || fail "a request in flight at the failure got $code: $(cat "$tmp/answer")"
wait $stream || fail "the stream did not end within 20 s"
# An error event if it was streaming already, else the 503 error object.
grep -q '"type":"service_unavailable"' "$tmp/stream" || fail "no error: $(cat "$tmp/stream")"
grep -q '\[DONE\]' "$tmp/stream" && fail "a failed stream ended with [DONE]"
code=$(curl -s -m 20 -o "$tmp/answer" -w '%{http_code}' "http://127.0.0.1:$router/v1/completions" \
  -d '{"prompt": "Hello", "max_tokens": 8, "temperature": 0}')
[[ $code == 503 ]] || fail "a request after the failure got $code: $(cat "$tmp/answer")"
for _ in $(seq 50); do
  curl -s "http://127.0.0.1:$router/health" | grep -q '"role":"decode","state":"down"' && break
  sleep 0.1
done
curl -s "http://127.0.0.1:$router/health" | grep -q '"role":"decode","state":"down"' ||
  fail "the router does not report the failed decode instance down"
echo "ok: an expert rank of a decode instance died: a stream in flight ended with an error, a request in flight and one after got 503, the router reports the instance down"
kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && fail "mpirun did not stop"
kill -TERM $both_pid
trap - EXIT
echo "PASS"
