#!/usr/bin/env bash
# The server with its EP ranks as MPI processes: `mpirun -np 2 server --ep=2` (rank 0 serves
# HTTP and runs the engine, rank 1 holds its experts) with redundant experts and a rebalance every
# 4 steps gives the greedy outputs of a single-process server, moves expert weights between the
# processes, and stops on SIGTERM; with Open MPI's recovery on, the expert rank's death mid-stream
# ends the stream with an error event and the server then answers 503.
set -euo pipefail

runfiles="${TEST_SRCDIR:-$0.runfiles}/dsmoe"
server="$runfiles/serving/server"
init="$runfiles/tools/init_checkpoint"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*"; exit 1; }
command -v mpirun >/dev/null || fail "mpirun is not installed (run tools/setup.sh)"

"$init" --config="$runfiles/serving/testdata/tiny_cpu.textproto" \
  --tokenizer="$runfiles/model/tokenizer/testdata/tiny_tokenizer.json" \
  --output="$tmp/ckpt" --seed=2 --init_std=0.2

wait_healthy() {  # PORT_FILE
  for _ in $(seq 300); do
    if [[ -s "$1" ]] &&
       [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$1")/health") == 200 ]]; then
      return 0
    fi
    sleep 0.1
  done
  fail "no healthy server"
}
complete() {  # PORT PROMPT
  curl -sf "http://127.0.0.1:$1/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"prompt\": \"$2\", \"max_tokens\": 40, \"temperature\": 0, \"ignore_eos\": true}"
}
text_of() { sed 's/.*"text":"\(.*\)"}\],"created.*/\1/' "$1"; }  # the one choice's text
prompts=("Hello" "A fortune" "The answer is" "Once upon a time")

"$server" --model="$tmp/ckpt" --port=0 --port_file="$tmp/port1" > "$tmp/single.log" 2>&1 &
pid=$!
wait_healthy "$tmp/port1"
for i in "${!prompts[@]}"; do complete "$(cat "$tmp/port1")" "${prompts[$i]}" > "$tmp/want$i"; done
kill -TERM $pid
wait $pid

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_mpi_yield_when_idle=1
unset XML_OUTPUT_FILE TEST_PREMATURE_EXIT_FILE
mpirun --oversubscribe --allow-run-as-root --bind-to none -np 2 "$server" --model="$tmp/ckpt" \
  --port=0 --port_file="$tmp/port2" --ep=2 --num_redundant_experts=2 --eplb_interval=4 \
  --eplb_window=8 > "$tmp/mpi.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
wait_healthy "$tmp/port2"
port=$(cat "$tmp/port2")
for i in "${!prompts[@]}"; do
  complete "$port" "${prompts[$i]}" > "$tmp/got$i"
  [[ "$(text_of "$tmp/got$i")" == "$(text_of "$tmp/want$i")" ]] ||
    fail "prompt $i: $(cat "$tmp/got$i") vs $(cat "$tmp/want$i")"
done
echo "ok: 2 MPI processes give the single process's greedy outputs"
metrics=$(curl -sf "http://127.0.0.1:$port/metrics")
echo "$metrics" | grep -E '^dsmoe_eplb_(rebalances_total|expert_bytes_moved_total|rank_tokens_total)'
echo "$metrics" | grep -q '^dsmoe_eplb_rebalances_total [1-9]' || fail "no rebalance"
echo "$metrics" | grep -q '^dsmoe_eplb_expert_bytes_moved_total [1-9]' || fail "no bytes moved"
echo "$metrics" | grep -q '^dsmoe_eplb_rank_tokens_total{rank="1"} [1-9]' || fail "rank 1 idle"
grep -q "rank 1 of 2 serves its experts" "$tmp/mpi.log" || fail "no worker rank"
echo "ok: rebalances moved expert weights between the processes"
kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && fail "mpirun did not stop"

# The expert rank dies mid-stream (Open MPI's recovery on, so the job outlives it): within the
# communicator's deadline the stream ends with an error event and no [DONE], /health answers 503,
# and a new request gets 503.
rm -f "$tmp/port2"
mpirun --oversubscribe --allow-run-as-root --bind-to none --mca orte_enable_recovery 1 -np 2 \
  "$server" --model="$tmp/ckpt" --port=0 --port_file="$tmp/port2" --ep=2 --comm_timeout=3s \
  --debug_step_delay_ms=20 > "$tmp/mpi.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
wait_healthy "$tmp/port2"
port=$(cat "$tmp/port2")
curl -sN -m 30 "http://127.0.0.1:$port/v1/completions" \
  -d '{"prompt": "Go on", "max_tokens": 120, "temperature": 0, "stream": true, "ignore_eos": true}' \
  > "$tmp/stream" &
stream=$!
for _ in $(seq 100); do [[ -s "$tmp/stream" ]] && break; sleep 0.05; done
[[ -s "$tmp/stream" ]] || fail "the stream did not start"
victim=""
for status in /proc/[0-9]*/status; do
  [[ $(awk '/^PPid:/ {print $2}' "$status" 2>/dev/null) == "$pid" ]] || continue
  child=$(basename "$(dirname "$status")")
  if tr '\0' '\n' < "/proc/$child/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then
    victim=$child
  fi
done
[[ -n "$victim" ]] || fail "no process of rank 1 under mpirun"
kill -9 "$victim"
wait $stream || fail "the stream did not end within 30 s"
tail -1 "$tmp/stream" | grep -q '^data: {"error":.*"type":"service_unavailable"' ||
  tail -2 "$tmp/stream" | grep -q '^data: {"error":.*"type":"service_unavailable"' ||
  fail "the stream did not end with an error event: $(tail -3 "$tmp/stream")"
grep -q '\[DONE\]' "$tmp/stream" && fail "a failed stream ended with [DONE]"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health") == 503 ]] ||
  fail "/health does not answer 503 after the failure"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/completions" \
  -d '{"prompt": "Hi", "max_tokens": 4}') == 503 ]] || fail "a new request is not refused with 503"
echo "ok: the expert rank died mid-stream: the stream ended with an error event, /health and new requests answer 503"
kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && fail "mpirun did not stop"
trap - EXIT
echo "PASS"
