#!/usr/bin/env bash
# Runs the schedule tool for real: the README's DualPipe prefix, every format, and bad requests
# answered with a one-line message and a non-zero exit.
set -euo pipefail
bin=tools/schedule

out=$("$bin" --schedule=dualpipe --ranks=8 --microbatches=20)
[[ $(wc -l <<<"$out") -eq 8 ]]
grep -q "^rank 0: F0.0 F0.1 F0.2 F0.3 F0.4 F0.5 F0.6 F1.0 I1.0 W1.0 F1.1 I1.1 W1.1 F1.2 I1.2 W1.2 F1.3 F0.7+B1.3 F1.4+B0.0 F0.8+B1.4 " <<<"$out"
grep -q "^rank 7: F1.0 " <<<"$out"

"$bin" --schedule=dualpipev --ranks=4 --microbatches=10 --format=svg | grep -q "</svg>"
"$bin" --schedule=1f1b --ranks=4 --microbatches=8 --format=trace | grep -q '"traceEvents"'
summary=$("$bin" --schedule=zb1p --ranks=4 --microbatches=8 --format=summary)
echo "$summary"
grep -q "^makespan 27, total bubble 12, mean bubble per rank 3, max peak activations 4" <<<"$summary"
"$bin" --schedule=interleaved1f1b --ranks=4 --microbatches=8 --chunks=2 | grep -q "^rank 3: F0.0 F0.1 F0.2 F0.3 F1.0 B1.0 "
"$bin" --schedule=zbv --ranks=4 --microbatches=8 | grep -q "^rank 0: F0.0 F0.1 F0.2 F0.3 F0.4 F0.5 F0.6 F1.0 I1.0 W1.0 "
summary=$("$bin" --schedule=dualpipe --ranks=8 --microbatches=20 --format=summary --cost_fb=3)
grep -q "mean bubble per rank 6," <<<"$summary"

expect_error() {  # expect_error FRAGMENT ARGS...: fails unless the tool exits non-zero with FRAGMENT.
  local fragment=$1
  shift
  local err
  if err=$("$bin" "$@" 2>&1); then echo "accepted: $*"; exit 1; fi
  if [[ $(wc -l <<<"$err") -ne 1 ]]; then echo "not one line: $err"; exit 1; fi
  grep -qF -- "$fragment" <<<"$err" || { echo "no '$fragment' in: $err"; exit 1; }
}
expect_error "even number of ranks" --schedule=dualpipe --ranks=7 --microbatches=20
expect_error "micro-batches >= 2*ranks (16), got microbatches=10" --schedule=dualpipe --ranks=8 --microbatches=10
expect_error "dualpipev needs micro-batches >= 2*ranks" --schedule=dualpipev --ranks=4 --microbatches=7
expect_error "unknown schedule 'gpipe'" --schedule=gpipe
expect_error "--format must be" --format=png
expect_error "--ranks must be in [1, 1024], got 0" --ranks=0
expect_error "--microbatches must be in" --schedule=1f1b --microbatches=-3
expect_error "cost weight (3) must not exceed backward (2)" --cost_w=3
expect_error "cost forward must be finite and >= 0" --cost_f=-1
expect_error "no_such_flag" --no_such_flag=1
expect_error "ranks" --ranks=abc
expect_error "--chunks must be in [2, 64], got 1" --schedule=interleaved1f1b --chunks=1
expect_error "micro-batches divisible by ranks (4)" --schedule=interleaved1f1b --ranks=4 --microbatches=6
expect_error "must be at most 500000, got 1024000" --schedule=1f1b --ranks=1024 --microbatches=1000
expect_error "unexpected argument 'extra'" extra
# Finite costs whose sum overflows: a clear error, not a deadlock with an empty reason.
expect_error "costs too large" --schedule=1f1b --ranks=4 --microbatches=8 --format=summary \
  --cost_f=1e308 --cost_b=1e308 --cost_w=1e308
expect_error "costs too large" --schedule=zbv --ranks=4 --microbatches=8 --cost_f=1e306 \
  --cost_b=1e307 --cost_w=1e306
# --chunks is neither used nor checked by schedules without chunks.
out=$("$bin" --schedule=1f1b --ranks=4 --microbatches=8 --chunks=1)
grep -q "^rank 0: F0.0 " <<<"$out"
# The SVG is as wide whatever the unit of the costs.
for cost_f in 1 1000; do
  out=$("$bin" --schedule=dualpipe --ranks=8 --microbatches=20 --format=svg --cost_f=$cost_f \
    --cost_b=$((2 * cost_f)) --cost_w=$cost_f)
  grep -q '^<svg [^>]* width="1890" ' <<<"$out"
done
# Pictures too large to open are refused; the trace of the largest accepted size is streamed.
expect_error "an SVG of 999424 ops is too large to open (at most 50000)" --schedule=1f1b \
  --ranks=1024 --microbatches=488 --format=svg
"$bin" --schedule=zbv --ranks=64 --microbatches=128 --format=trace | tail -c 4 | grep -q ']}'
"$bin" --help | grep -q "Usage: schedule"
echo PASS
