#!/bin/bash
# Runs a test binary as N Open MPI processes on this machine and fails if any process fails.
#   mpirun_test.sh N BINARY [ARGS...]
# Works as root (CI) and oversubscribed (more ranks than cores).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: mpirun_test.sh N BINARY [ARGS...]" >&2
  exit 2
fi
np=$1
binary=$2
shift 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Shared memory and loopback only; idle ranks yield the CPU.
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_mpi_yield_when_idle=1
# Every rank runs the binary: keep Bazel's per-test result files from being written N times.
unset XML_OUTPUT_FILE TEST_PREMATURE_EXIT_FILE
exec timeout 100 mpirun --oversubscribe --allow-run-as-root --bind-to none -np "$np" \
  "$binary" "$@"
