// toolchain_info: proves the build's toolchain on this machine. Prints the compiler, the CUDA
// runtime and NCCL versions the binary linked, the GPUs it can see, and the GFLOP/s of a square
// f32 GEMM through Eigen and through OpenBLAS (single thread each, so figures compare across runs).
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "Eigen/Core"
#include "absl/flags/flag.h"
#include "core/blas_kernels.h"
#include "core/flags.h"
#include "core/gpu_info.h"

ABSL_FLAG(int, gemm_size, 512, "side of the square GEMM to time, in [16, 4096]");
ABSL_FLAG(int, repeats, 5, "GEMMs per timing, in [1, 1000]; the best is reported");

namespace {

// Best-of-`repeats` GFLOP/s of `gemm`, a function that performs one n x n x n GEMM.
template <typename Fn>
double BestGflops(int n, int repeats, Fn gemm) {
  double best_seconds = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    gemm();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds < best_seconds) best_seconds = seconds;
  }
  return 2.0 * n * n * n / best_seconds / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  core::UseBestBlasKernels(argv);
  core::ParseFlagsOrExit(
      argc, argv,
      "Prints the toolchain this build linked (compiler, CUDA, NCCL), the visible GPUs, and the "
      "GFLOP/s of a single-threaded f32 GEMM through Eigen and OpenBLAS.\n"
      "Usage: toolchain_info [--gemm_size=512] [--repeats=5]");
  const int n = absl::GetFlag(FLAGS_gemm_size);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  if (n < 16 || n > 4096) {
    std::fprintf(stderr, "toolchain_info: --gemm_size must be in [16, 4096], got %d\n", n);
    return 2;
  }
  if (repeats < 1 || repeats > 1000) {
    std::fprintf(stderr, "toolchain_info: --repeats must be in [1, 1000], got %d\n", repeats);
    return 2;
  }

  std::printf("compiler        g++ %s, C++%ld\n", __VERSION__, __cplusplus / 100 % 100);
  const core::GpuInfo gpu = core::QueryGpuInfo();
  if (gpu.cuda_linked) {
    std::printf("CUDA runtime    %s\n", gpu.cuda_runtime_version.c_str());
    std::printf("NCCL            %s\n", gpu.nccl_version.c_str());
  } else {
    std::printf("CUDA runtime    not linked (no toolkit at build time)\n");
    std::printf("NCCL            not linked\n");
  }
  std::printf("GPUs visible    %zu\n", gpu.devices.size());
  for (const std::string& device : gpu.devices) std::printf("                %s\n", device.c_str());

  Eigen::setNbThreads(1);
  openblas_set_num_threads(1);
  const Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n);
  const Eigen::MatrixXf b = Eigen::MatrixXf::Random(n, n);
  Eigen::MatrixXf c(n, n);
  const double eigen = BestGflops(n, repeats, [&] { c.noalias() = a * b; });
  Eigen::MatrixXf c_blas(n, n);
  const double blas = BestGflops(n, repeats, [&] {
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c_blas.data(), n);
  });
  const float max_diff = (c - c_blas).cwiseAbs().maxCoeff();
  std::printf(
      "SGEMM %dx%dx%d  Eigen %.1f GFLOP/s, OpenBLAS %.1f GFLOP/s (1 thread, %s kernels; max |diff| "
      "%.2g)\n",
      n, n, n, eigen, blas, core::BlasCoreName().c_str(), max_diff);
  if (!(max_diff < 1e-2f * n)) {
    std::fprintf(stderr, "toolchain_info: Eigen and OpenBLAS disagree (max |diff| %g)\n", max_diff);
    return 1;
  }
  return 0;
}
