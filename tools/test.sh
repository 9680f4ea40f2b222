#!/usr/bin/env bash
# Sets the machine up (tools/setup.sh), runs the whole test suite with `bazel test //...`, then the
# checks CI holds the tree to, and ends with one line `N passed, N failed`: the tests counted from
# Bazel's test summary plus one entry per check. Exits non-zero if any test, check or build failed.
# Extra arguments go to `bazel test` (e.g. --config=cuda). The checks:
#   format:     clang-format --dry-run -Werror over every tracked *.cc *.h *.cu (check_format.sh)
#   layering:   no target depends on a layer above its own (check_layers.sh, bazel query)
#   vocabulary: one span type, one check macro, no thread_local scratch, ... (check_vocabulary.sh)
#   cuda build: bazel build --config=cuda //... compiles the GPU code with nvcc (no GPU needed);
#               skipped, and said so, on a machine without the CUDA toolkit
#   benchmarks: every registered benchmark runs once with minimal iterations (tools/bench.sh
#               --smoke), so none rots unnoticed; no timing verdict
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

# Runs check $1 (the command after it); counts it as one passed or failed entry.
check() {
  local name=$1
  shift
  if "$@"; then
    echo "check ${name}: PASSED"
    passed=$((passed + 1))
  else
    echo "check ${name}: FAILED"
    failed=$((failed + 1))
  fi
}
check format bash tools/check_format.sh
check layering bash tools/check_layers.sh
check vocabulary bash tools/check_vocabulary.sh
check benchmarks bash tools/bench.sh --smoke
if [[ -x ${CUDA_PATH:-/usr/local/cuda}/bin/nvcc ]]; then
  check "cuda build" bazel build --keep_going --config=cuda //...
else
  echo "check cuda build: skipped (no nvcc at ${CUDA_PATH:-/usr/local/cuda}/bin/nvcc)"
fi

echo "${passed} passed, ${failed} failed"
[[ $failed -eq 0 ]]
