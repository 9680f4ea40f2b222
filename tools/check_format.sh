#!/usr/bin/env bash
# Checks that every C++ and CUDA file git tracks (*.cc, *.h, *.cu) is formatted as .clang-format
# says (Google style, 100 columns): runs `clang-format --dry-run -Werror` over them, prints each
# difference and exits non-zero if there is any. Fix with:
#   git ls-files '*.cc' '*.h' '*.cu' | xargs clang-format -i
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v clang-format >/dev/null; then
  echo "check_format: clang-format not found (bash tools/setup.sh installs it)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cc' '*.h' '*.cu')
if ((${#files[@]} == 0)); then
  echo "check_format: no C++ files found (not a git checkout?)" >&2
  exit 1
fi
if clang-format --dry-run -Werror "${files[@]}"; then
  echo "check_format: ${#files[@]} files formatted"
else
  echo "check_format: files above need clang-format -i" >&2
  exit 1
fi
