#!/usr/bin/env bash
# Tests the rebalance CLI: exact JSON on DeepSeek's example, text and SVG output, and that bad
# flags or input give a one-line message on stderr and a non-zero exit.
set -u
BIN=eplb/rebalance
DATA=eplb/testdata
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
ARGS=(--loads="$DATA/deepseek_example.csv" --num_replicas=16 --num_groups=4 --num_nodes=2
      --num_gpus=8)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

out=$("$BIN" "${ARGS[@]}" --policy=deepseek --format=json) || fail "json run exited non-zero"
[[ "$out" == "$(cat "$DATA/deepseek_example_cli.json")" ]] || fail "json differs: $out"

out=$("$BIN" "${ARGS[@]}") || fail "text run exited non-zero"
grep -q '^layer 1: balancedness ' <<<"$out" || fail "text lacks layer 1: $out"
grep -q '^    gpu 7: load ' <<<"$out" || fail "text lacks gpu 7: $out"

"$BIN" "${ARGS[@]}" --format=svg >"$TMP/placement.svg" || fail "svg run exited non-zero"
[[ $(grep -c '<rect [^>]*stroke="#404040"' "$TMP/placement.svg") == 32 ]] ||
  fail "svg should draw 2 layers x 16 replica boxes"
if command -v python3 >/dev/null; then
  python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$TMP/placement.svg" ||
    fail "svg is not well-formed XML"
fi

"$BIN" --help >/dev/null || fail "--help exited non-zero"

# expect_error WANTED_TEXT ARGS...: non-zero exit, one line on stderr containing WANTED_TEXT.
expect_error() {
  local want="$1"
  shift
  local err
  if err=$("$BIN" "$@" 2>&1 >/dev/null); then fail "exit 0 for: $*"; fi
  [[ $(wc -l <<<"$err") == 1 ]] || fail "want one line of error for: $*, got: $err"
  grep -qF -- "$want" <<<"$err" || fail "want '$want' for: $*, got: $err"
}

printf '1,-3,2,2\n' >"$TMP/negative.csv"
printf '1,2,3,4\n5,6\n' >"$TMP/ragged.csv"
printf '1,2,abc,4\n' >"$TMP/text.csv"
: >"$TMP/empty.csv"
SIZES=(--num_replicas=4 --num_groups=2 --num_nodes=1 --num_gpus=2)
expect_error "--loads is required" --num_replicas=16 --num_groups=4 --num_nodes=2 --num_gpus=8
expect_error "cannot open loads file" --loads="$TMP/missing.csv" "${SIZES[@]}"
expect_error "loads[0][1] is -3" --loads="$TMP/negative.csv" "${SIZES[@]}"
expect_error "line 2 has 2 loads but earlier lines have 4" --loads="$TMP/ragged.csv" "${SIZES[@]}"
expect_error "'abc' is not a number" --loads="$TMP/text.csv" "${SIZES[@]}"
expect_error "no data lines" --loads="$TMP/empty.csv" "${SIZES[@]}"
python3 -c 'print("\n".join(["1,2,3,4"] * 25001))' >"$TMP/many_layers.csv"
expect_error "an SVG of 100004 replicas (layers x replicas) is too large to open (at most 100000)" \
  --loads="$TMP/many_layers.csv" "${SIZES[@]}" --format=svg
"$BIN" --loads="$TMP/many_layers.csv" "${SIZES[@]}" --format=json >"$TMP/big.json" ||
  fail "big json failed"
python3 -c 'import json, sys; assert len(json.load(open(sys.argv[1]))["log2phy"]) == 25001' \
  "$TMP/big.json" || fail "big json is not JSON of 25001 layers"
expect_error "is a directory" --loads="$TMP" "${SIZES[@]}"
expect_error "holds more than 64 MiB" --loads=/dev/zero "${SIZES[@]}"
printf '1,%s\n' "$(printf '\033[31m%.0s' {1..30})" >"$TMP/escape.csv"
# The field escaped and cut at 40 bytes: 8 of its 30 five-byte escape sequences.
expect_error "field 2: '$(printf '\\x1b[31m%.0s' {1..8})...' is not a number" \
  --loads="$TMP/escape.csv" "${SIZES[@]}"
printf '1e38,1e38,1e38,1e38\n' >"$TMP/overflow.csv"
expect_error "loads of layer 0 sum to 4e+38" --loads="$TMP/overflow.csv" "${SIZES[@]}"
expect_error "--num_gpus must be a positive integer, got 0" "${ARGS[@]}" --num_gpus=0
expect_error "num_gpus" "${ARGS[@]}" --num_gpus=abc
expect_error "num_gpus (6) must divide num_replicas (16)" "${ARGS[@]}" --num_gpus=6
expect_error "num_replicas (8) must be at least the number of experts (12)" "${ARGS[@]}" \
  --num_replicas=8
expect_error "num_groups (5) must divide the number of experts (12)" "${ARGS[@]}" --num_groups=5
expect_error "policy 'best' is not one of: deepseek, refined" "${ARGS[@]}" --policy=best
expect_error "--format must be json, text or svg, got 'xml'" "${ARGS[@]}" --format=xml
expect_error "Unknown command line flag" "${ARGS[@]}" --no_such_flag=1
if "$BIN" "${ARGS[@]}" stray >/dev/null 2>&1; then fail "a positional argument was accepted"; fi
echo PASS
