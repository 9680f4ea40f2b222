#!/usr/bin/env bash
# Holds the C++ sources to the one vocabulary docs/architecture.md's "Conventions every package
# follows" names, so that new code cannot copy a pattern the tree gave up. Prints each offending
# line and exits 1 if any rule is broken. The rules (tracked *.cc *.h *.cu files):
#   span:         absl::Span, not std::span
#   checks:       DSMOE_CHECK / DSMOE_DCHECK (core/check.h), not assert() or a bare CHECK
#   hidden state: no thread_local scratch: buffers reused across calls are explicit workspaces
#   memory:       core::Device says where memory lives (no second enum beside it)
#   test helpers: no namespace `testing` of our own (it would shadow gtest's ::testing)
set -uo pipefail
cd "$(dirname "$0")/.."

mapfile -t sources < <(git ls-files '*.cc' '*.h' '*.cu')
broken=0

# Reports the lines of the sources matching extended regex $2 as a breach of rule $1 (comment
# lines, which may name what is not used, are left out).
forbid() {
  local rule=$1 pattern=$2 hits
  hits=$(grep -nE "$pattern" "${sources[@]}" | grep -vE '^[^:]+:[0-9]+: *//')
  if [[ -n $hits ]]; then
    echo "vocabulary (${rule}):"
    echo "$hits"
    broken=1
  fi
}

forbid span 'std::span|#include <span>'
forbid checks '(^|[^_[:alnum:]])(assert|CHECK|DCHECK)\(|#include <cassert>'
forbid "hidden state" '(^|[^_[:alnum:]])thread_local([^_[:alnum:]]|$)'
forbid memory 'MemoryKind'
forbid "test helpers" 'namespace testing([^_[:alnum:]]|$)'

exit $broken
