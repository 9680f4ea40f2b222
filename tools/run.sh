#!/usr/bin/env bash
# The main job: sets the machine up (tools/setup.sh), builds the trainer, and trains the tiny MoE
# model (training/configs/tiny_cpu.textproto) on the fortunes corpus: DualPipe over 2 pipeline
# ranks x 2 expert-parallel ranks, as threads, on the CPU. Extra arguments go to the trainer
# (e.g. --steps=50 or --output_dir=DIR). Needs no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
bazel build -c opt //training:train
bazel-bin/training/train --config=training/configs/tiny_cpu.textproto \
  --output_dir="${DSMOE_OUTPUT_DIR:-$HOME/dsmoe-runs/tiny_cpu}" "$@"
