#!/usr/bin/env bash
# Runs toolchain_info for real: a small GEMM succeeds and reports GFLOP/s; bad flags exit non-zero
# with a message naming the flag.
set -euo pipefail
bin=tools/toolchain_info

out=$("$bin" --gemm_size=64 --repeats=2)
echo "$out"
grep -q "^SGEMM 64x64x64  Eigen .* GFLOP/s, OpenBLAS .* GFLOP/s" <<<"$out"
grep -q "^GPUs visible" <<<"$out"

if err=$("$bin" --gemm_size=3 2>&1); then echo "accepted --gemm_size=3"; exit 1; fi
grep -q -- "--gemm_size must be in" <<<"$err"
if err=$("$bin" --no_such_flag 2>&1); then echo "accepted an unknown flag"; exit 1; fi
grep -qi "no_such_flag" <<<"$err"
"$bin" --help | grep -q "Usage: toolchain_info"
if err=$("$bin" extra 2>&1); then echo "accepted a positional argument"; exit 1; fi
grep -q "unexpected argument 'extra'" <<<"$err"
echo PASS
