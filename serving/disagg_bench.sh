#!/usr/bin/env bash
# Prefill/decode disaggregation against a colocated server under a mixed load (docs/benchmarks.md):
# short prompts streaming long outputs while long prompts arrive. Both setups get the same two
# compute threads: colocated, one server with --threads=2; disaggregated, a router, a prefill
# instance and a decode instance with --threads=1 each. The model is the main job's shape with a
# 2048-token context (so that a long prompt's prefill is long).
#   bazel run //serving:disagg_bench -- [SECONDS=20] [SHORT_CLIENTS=8] [LONG_PER_SECOND=2] [LONG_TOKENS=1536]
set -euo pipefail

runfiles="${RUNFILES_DIR:-$0.runfiles}/dsmoe"
[[ -d "$runfiles" ]] || runfiles="$(cd "$(dirname "$0")/.." && pwd)"
server="$runfiles/serving/server"
init="$runfiles/tools/init_checkpoint"
load="$runfiles/serving/disagg_bench.js"
seconds=${1:-20}; clients=${2:-8}; rate=${3:-2}; long=${4:-1536}
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

sed 's/^max_seq_len: .*/max_seq_len: 2048/' "$runfiles/serving/testdata/tiny_cpu.textproto" > "$tmp/model.textproto"
"$init" --config="$tmp/model.textproto" --tokenizer="$runfiles/model/tokenizer/testdata/tiny_tokenizer.json" \
  --output="$tmp/ckpt" --seed=1 --init_std=0.2 > /dev/null
start() {  # NAME ARGS...
  local name=$1
  shift
  "$server" --model="$tmp/ckpt" --port=0 --port_file="$tmp/$name.port" "$@" > "$tmp/$name.log" 2>&1 &
  pids+=($!)
}
healthy() {  # NAME
  for _ in $(seq 600); do
    [[ -s "$tmp/$1.port" ]] &&
      [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$tmp/$1.port")/health") == 200 ]] && return 0
    sleep 0.1
  done
  echo "no healthy $1"; exit 1
}
run() {  # LABEL PORT
  local result
  result=$(node "$load" "$2" "$seconds" "$clients" "$rate" "$long")
  echo "$1 $result"
}

echo "load: $clients closed-loop clients streaming 16-token prompts x 96 tokens; $rate/s prompts of $long tokens x 8; ${seconds}s; greedy"
start both --threads=2 --kv_cache_mb=64
healthy both
run colocated "$(cat "$tmp/both.port")"
kill "${pids[0]}"

"$server" --role=router --port=0 --port_file="$tmp/router.port" > "$tmp/router.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$tmp/router.port" ]] && break; sleep 0.1; done
R="http://127.0.0.1:$(cat "$tmp/router.port")"
start prefill --role=prefill --router="$R" --threads=1 --kv_cache_mb=64
start decode --role=decode --router="$R" --threads=1 --kv_cache_mb=64
healthy router
run disaggregated "$(cat "$tmp/router.port")"
