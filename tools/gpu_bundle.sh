#!/usr/bin/env bash
# Packs the GPU tests and GPU benchmarks for a machine that has a GPU but no Bazel (the device
# machines): builds them with --config=cuda -c opt, statically linking our own code, and copies them
# with the shared libraries `ldd` names into .device/ (git-ignored). CUDA's own libraries (cudart,
# cuBLAS, NCCL: hundreds of MiB) and the driver are not copied; the target machine has them.
#
#   bash tools/gpu_bundle.sh            # here
#   bash .device/run_gpu.sh             # there (carry .device): every GPU test, then the benchmarks
#   bash .device/run_gpu.sh tests       # only the tests
set -euo pipefail
cd "$(dirname "$0")/.."

tests=(
  //core:axpy_test
  //comm:nccl_communicator_test
  //model/cuda:attention_kernels_test
  //model/cuda:cublas_gemm_test
  //model/cuda:elementwise_kernels_test
  //model/cuda:mlp_layer_test
  //model/cuda:moe_layer_test
  //model/cuda:routing_kernels_test
)
benchmarks=(//model/cuda:kernels_benchmark)

bazel build --config=cuda -c opt --dynamic_mode=off "${tests[@]}" "${benchmarks[@]}"

out=.device
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for label in "${tests[@]}" "${benchmarks[@]}"; do
  path=${label#//}
  path=${path/://}
  cp "bazel-bin/$path" "$out/bin/"
  ldd "bazel-bin/$path" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
done | grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so|^/usr/local/cuda|/libcuda\.so' |
  sort -u | xargs -r cp -L -t "$out/lib"

cat > "$out/run_gpu.sh" <<'RUN'
#!/usr/bin/env bash
# Runs the bundled GPU tests (and, unless "tests" is given, the benchmarks) and prints
# "N passed, N failed" for the tests.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cuda=${CUDA_PATH:-/usr/local/cuda}
nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(os.path.dirname(nvidia.nccl.__file__), "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$here/lib:$cuda/lib64${nccl:+:$nccl}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi -L || true
passed=0 failed=0
for t in "$here"/bin/*_test; do
  echo "=== $(basename "$t")"
  if "$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
if [[ ${1:-all} != tests ]]; then
  for b in "$here"/bin/*_benchmark; do echo "=== $(basename "$b")"; "$b" || failed=$((failed + 1)); done
fi
echo "${passed} passed, ${failed} failed"
[[ $failed -eq 0 ]]
RUN
chmod +x "$out/run_gpu.sh"
du -sh "$out"
