#!/usr/bin/env bash
# Our model against the float64 PyTorch port of DeepSeek's reference model (see
# check_reference.py): dump_cases writes each case's weights and our logits, then Debian's
# python3 (with python3-torch, from tools/setup.sh) runs the port on the same weights and
# compares.
#   reference_test.sh DUMP_CASES CHECK_SCRIPT CONFIG.textproto...
set -euo pipefail
dump_cases="$1"
check="$2"
shift 2
if ! /usr/bin/python3 -c 'import numpy, torch' 2>/dev/null; then
  echo "reference_test: /usr/bin/python3 needs Debian's python3-torch and python3-numpy" \
    "(tools/setup.sh installs them)" >&2
  exit 1
fi
out="${TEST_TMPDIR:-$(mktemp -d)}/reference_cases"
mkdir -p "$out"
"$dump_cases" "$out" "$@"
cases=()
for config in "$@"; do
  name="$(basename "$config")"
  cases+=("${name%.textproto}")
done
/usr/bin/python3 "$check" "$out" "${cases[@]}"
