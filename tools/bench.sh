#!/usr/bin/env bash
# Builds the registered benchmarks (tools/bench/benchmarks.txt) with -c opt, runs them, writes one
# result file per revision and machine into bench-results/, and compares: --baseline=FILE|REV,
# --vs=REV (A/B, interleaved), --compare OLD NEW; --smoke runs each once for CI. `--help` lists
# the options; docs/benchmarks.md, "Running the benchmarks", is the manual.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's python3 has the scipy that compare.py's U test imports (python3-scipy).
py=/usr/bin/python3
[[ -x $py ]] || py=python3
exec "$py" tools/bench/bench.py "$@"
