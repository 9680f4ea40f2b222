#!/usr/bin/env bash
# The main job: sets the machine up (tools/setup.sh), builds every target, and runs the toolchain
# report (compiler, CUDA/NCCL versions linked, visible GPUs, GEMM GFLOP/s). Needs no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
bazel build //...
bazel run //tools:toolchain_info -- "$@"
