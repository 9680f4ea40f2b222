#!/usr/bin/env bash
# Training throughput of our trainer beside the PyTorch port of DeepSeek-V3's reference model
# (training/bench/pytorch_train.py: autograd, torch.optim.AdamW), same model and global batch,
# interleaved over several rounds on this machine; prints a table of tokens/s and MFU (medians
# over the rounds of each run's median step).
#   bash training/bench/train_vs_pytorch.sh [ROUNDS]   (from the repository root)
# Environment: CONFIGS (default "tiny_cpu small_cpu"), THREADS (PyTorch's threads; default the
# cores), OURS_STEPS_<config> / TORCH_STEPS_<config> (timed steps per run), BENCH_DIR.
# Ours: 4 ranks as threads (the config's DualPipe pp=2 x ep=2), -c opt; its first step is not
# counted. MFU: the trainer's FLOPs per token (6 per active weight plus attention) against one
# peak measured at the start (one core's SGEMM rate times the cores, or PEAK_TFLOPS); PyTorch's MFU
# uses the same FLOPs and peak.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
configs=${CONFIGS:-tiny_cpu small_cpu}
threads=${THREADS:-$(nproc)}
dir=${BENCH_DIR:-/tmp/dsmoe-train-bench}
python=/usr/bin/python3  # Debian's, with torch
mkdir -p "$dir"
bazel build -c opt //training:train >/dev/null 2>&1 || bazel build -c opt //training:train
# A copy: bazel-bin follows whichever configuration this worktree builds next.
bin=$dir/train
cp -f "$(bazel info -c opt bazel-bin 2>/dev/null)/training/train" "$bin"

declare -A ours_steps=([tiny_cpu]=${OURS_STEPS_tiny_cpu:-8} [small_cpu]=${OURS_STEPS_small_cpu:-5})
declare -A torch_steps=([tiny_cpu]=${TORCH_STEPS_tiny_cpu:-4} [small_cpu]=${TORCH_STEPS_small_cpu:-3})
# The machine's peak for both MFUs, measured once as the trainer would (one core's best SGEMM rate
# times the cores), here with torch on one thread.
peak_tflops=${PEAK_TFLOPS:-$("$python" -c "
import os, time, torch
torch.set_num_threads(1)
a = torch.full((384, 384), 0.5); b = torch.full((384, 384), 0.25)
best = 0
for _ in range(20):
    t = time.perf_counter(); a @ b; best = max(best, 2 * 384**3 / (time.perf_counter() - t))
print(best * os.cpu_count() / 1e12)")}
results=$dir/results.jsonl
: >"$results"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "load average at start $(cut -d' ' -f1-3 /proc/loadavg), peak ${peak_tflops} TFLOP/s (SGEMM, 1 core x cores)"
for round in $(seq 1 "$rounds"); do
  for c in $configs; do
    out=$dir/ours-$c-$round
    rm -rf "$out"
    "$bin" --config=training/configs/$c.textproto --steps=$((ours_steps[$c] + 1)) \
      --output_dir="$out" --peak_tflops="$peak_tflops" --set data.cache_dir="$dir/cache" \
      --set logging.log_every=1 \
      --set logging.eval_every=0 --set logging.eval_microbatches=0 \
      --set checkpoint.every_steps=0 --set logging.expert_loads_every=0 >"$out.log" 2>&1
    python3 - "$out/metrics.jsonl" "$c" "$round" >>"$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]  # the first step warms up
tps = statistics.median(r["tokens_per_second"] for r in rows)
mfu = statistics.median(r["mfu"] for r in rows)
print(json.dumps({"config": sys.argv[2], "round": int(sys.argv[3]), "who": "ours",
                  "tokens_per_second": tps, "flops_per_peak": mfu / tps}))
PY
    "$python" training/bench/pytorch_train.py --config=training/configs/$c.textproto \
      --steps="${torch_steps[$c]}" --warmup=1 --threads="$threads" >"$dir/torch-$c-$round.json"
    python3 - "$dir/torch-$c-$round.json" "$c" "$round" >>"$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"config": sys.argv[2], "round": int(sys.argv[3]), "who": "pytorch",
                  "tokens_per_second": r["tokens_per_second"]}))
PY
    tail -2 "$results" | sed "s/^/round $round: /"
  done
done
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" "$threads" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print()
print(f"| config | ours tokens/s | ours MFU | PyTorch tokens/s ({sys.argv[2]} threads) | PyTorch MFU | ours / PyTorch |")
print("|---|---|---|---|---|---|")
for config in dict.fromkeys(r["config"] for r in rows):
    ours = [r for r in rows if r["config"] == config and r["who"] == "ours"]
    torch = [r for r in rows if r["config"] == config and r["who"] == "pytorch"]
    o = statistics.median(r["tokens_per_second"] for r in ours)
    t = statistics.median(r["tokens_per_second"] for r in torch)
    per_token = statistics.median(r["flops_per_peak"] for r in ours)  # FLOPs per token / peak
    ratios = sorted(a["tokens_per_second"] / b["tokens_per_second"]
                    for a, b in zip(ours, torch))
    print(f"| {config} | {o:.0f} | {100 * o * per_token:.2f}% | {t:.0f} | "
          f"{100 * t * per_token:.2f}% | {o / t:.2f}x (rounds {', '.join(f'{x:.2f}' for x in ratios)}) |")
PY
