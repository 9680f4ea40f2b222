// What the build linked and what the machine has, for the toolchain report and for binaries that
// choose a default device. Works on every machine: without the CUDA toolkit at build time it says
// so; without a GPU at run time it reports zero devices.
#ifndef CORE_GPU_INFO_H_
#define CORE_GPU_INFO_H_

#include <string>
#include <vector>

namespace core {

struct GpuInfo {
  bool cuda_linked = false;          // built against the CUDA toolkit
  std::string cuda_runtime_version;  // e.g. "13.0"; empty if not linked
  std::string nccl_version;          // e.g. "2.27.7"; empty if not linked
  std::vector<std::string> devices;  // "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)", one per GPU
};

GpuInfo QueryGpuInfo();

}  // namespace core

#endif  // CORE_GPU_INFO_H_
