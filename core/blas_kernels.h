// OpenBLAS's kernels for the CPU we run on.
//
// OpenBLAS picks its kernels once, when the library loads, from the CPUs it recognises. Debian's
// 0.3.21 does not know AMD Zen 4 and runs its AVX2 (Haswell) kernels there although the CPU has
// AVX-512: SGEMM then reaches about half of what the same cores do with the AVX-512 (SkylakeX)
// kernels, which OpenBLAS also ships. The choice can only be made before the library loads, through
// OPENBLAS_CORETYPE, so binaries that spend their time in GEMMs call UseBestBlasKernels first
// thing in main:
//
//   int main(int argc, char** argv) {
//     core::UseBestBlasKernels(argv);   // may re-execute this program once
//     ...
#ifndef CORE_BLAS_KERNELS_H_
#define CORE_BLAS_KERNELS_H_

#include <string>

namespace core {

// The kernel family OpenBLAS uses in this process ("Haswell", "SkylakeX", ...).
std::string BlasCoreName();

// When the CPU has AVX-512 (F, CD, BW, DQ, VL), OpenBLAS loaded older kernels and the user did not
// set OPENBLAS_CORETYPE, re-executes this program (/proc/self/exe with `argv`) with
// OPENBLAS_CORETYPE=SKYLAKEX; otherwise, or if that fails, returns and leaves everything as it is.
// Call before any thread, file or communicator exists. Not thread-safe.
void UseBestBlasKernels(char** argv);

}  // namespace core

#endif  // CORE_BLAS_KERNELS_H_
