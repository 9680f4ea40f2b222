// GpuInfo for builds on machines without the CUDA toolkit.
#include "core/gpu_info.h"

namespace core {

GpuInfo QueryGpuInfo() { return GpuInfo{}; }

}  // namespace core
