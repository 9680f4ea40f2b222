#!/usr/bin/env bash
# Installs, idempotently, everything a fresh Debian 12 machine needs to build and test the project:
# Bazel (Debian's bazel-bootstrap), the offline stand-ins for Bazel's own repositories, compilers,
# and the -dev packages of every third_party library. Safe to run again: packages already present
# are skipped and apt-get is not even called.
set -euo pipefail

packages=(
  bazel-bootstrap bazel-rules-java bazel-platforms
  g++ build-essential python3 zip unzip git clang-format
  libabsl-dev libprotobuf-dev protobuf-compiler libeigen3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin
  libcpp-httplib-dev nlohmann-json3-dev libopenblas-dev
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
