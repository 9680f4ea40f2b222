// GpuInfo for builds that found the CUDA toolkit: asks cudart and NCCL.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "absl/strings/str_cat.h"
#include "core/gpu_info.h"

namespace core {

GpuInfo QueryGpuInfo() {
  GpuInfo info;
  info.cuda_linked = true;
  int runtime = 0;
  if (cudaRuntimeGetVersion(&runtime) == cudaSuccess) {
    info.cuda_runtime_version = absl::StrCat(runtime / 1000, ".", (runtime % 1000) / 10);
  }
  int nccl = 0;
  if (ncclGetVersion(&nccl) == ncclSuccess) {
    info.nccl_version = absl::StrCat(nccl / 10000, ".", (nccl / 100) % 100, ".", nccl % 100);
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    count = 0;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    info.devices.push_back(absl::StrCat(prop.name, " (sm_", prop.major, prop.minor, ", ",
                                        prop.totalGlobalMem >> 30, " GiB)"));
  }
  return info;
}

}  // namespace core
