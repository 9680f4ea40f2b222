#!/usr/bin/env bash
# Checks the layering of docs/architecture.md with `bazel query`: every direct dependency of a
# target in a layer must be in the same layer, in a layer below it, or shared (third_party,
# tools/bazel, external repositories). Prints each edge that breaks the rule and exits non-zero
# if there is one. The layers, lowest first:
#
#   core <- comm <- {eplb, dualpipe, model} <- {training, serving};  tools may use anything.
#
# model may use dualpipe's Stage interface (//dualpipe:stage) and nothing else of dualpipe.
# Code edges count (deps, srcs, hdrs); `data` does not: a test may run a tool binary of any layer
# (model/tokenizer's parity test runs //tools:train_tokenizer), which links nothing into it.
set -uo pipefail
cd "$(dirname "$0")/.."

shared='//third_party/... + //tools/bazel/...'
# layer: what its targets may depend on besides themselves and $shared.
declare -A allowed=(
  [core]=''
  [comm]='//core/...'
  [eplb]='//core/... + //comm/...'
  [dualpipe]='//core/... + //comm/...'
  [model]='//core/... + //comm/... + //dualpipe:stage'
  [training]='//core/... + //comm/... + //eplb/... + //dualpipe/... + //model/...'
  [serving]='//core/... + //comm/... + //eplb/... + //dualpipe/... + //model/...'
  [third_party]=''
)

err=$(mktemp)
trap 'rm -f "$err"' EXIT
violations=0
for layer in core comm eplb dualpipe model training serving third_party; do
  if [[ ! -f $layer/BUILD ]]; then continue; fi
  ok="//$layer/... + $shared"
  [[ -n ${allowed[$layer]} ]] && ok+=" + ${allowed[$layer]}"
  # Direct code dependencies of the layer's targets (every branch of every select) that are ours
  # and not allowed. External repositories (@...) are shared.
  targets="//$layer/..."
  code="labels(deps, $targets) + labels(srcs, $targets) + labels(hdrs, $targets)"
  query="kind(rule, ($code) - ($ok))"
  bad=$(bazel query --noimplicit_deps "$query" 2>"$err")
  rc=$?
  if ((rc != 0)); then
    cat "$err" >&2
    echo "check_layers: bazel query failed for $layer" >&2
    exit 1
  fi
  for dep in $(grep '^//' <<<"$bad"); do
    users=$(bazel query --noimplicit_deps "rdeps(//$layer/..., $dep, 1) - $dep" 2>/dev/null |
      grep '^//' | tr '\n' ' ')
    echo "check_layers: $layer must not depend on $dep (used by: ${users% })"
    violations=$((violations + 1))
  done
done
if ((violations > 0)); then
  echo "check_layers: $violations dependencies break the layering of docs/architecture.md" >&2
  exit 1
fi
echo "check_layers: every dependency points down the layers"
