#!/usr/bin/env bash
# Sets the machine up (tools/setup.sh), runs the whole test suite with `bazel test //...`, and
# ends with one line `N passed, N failed` counted from Bazel's test summary. Exits non-zero if any
# test or build failed. Extra arguments go to `bazel test` (e.g. --config=cuda).
set -uo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
bazel test --keep_going "$@" //... 2>&1 | tee "$log"
bazel_rc=${PIPESTATUS[0]}

passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|INCOMPLETE|FLAKY)' "$log")
# Bazel exits 4 when there were no tests to run; anything else non-zero with no failed test
# line means the build itself broke.
if [[ $bazel_rc -ne 0 && $bazel_rc -ne 4 && $failed -eq 0 ]]; then failed=1; fi
echo "${passed} passed, ${failed} failed"
[[ $failed -eq 0 ]]
