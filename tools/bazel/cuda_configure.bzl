"""Repository rule that finds the CUDA toolkit.

The toolkit is looked for at $CUDA_PATH (default /usr/local/cuda). The generated repository has:
  //:cuda_headers, //:cudart, //:nccl, //:cublas   cc_library targets (empty when no toolkit)
  //:defs.bzl   CUDA_FOUND (bool), CUDA_PATH and NVCC (absolute paths) for tools/bazel/cuda.bzl
A machine without the toolkit gets empty targets and CUDA_FOUND = False, so CPU targets still build.
"""

_BUILD_FOUND = """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "cuda_headers",
    hdrs = glob(["cuda/include/**"]),
    includes = ["cuda/include"],
)

cc_library(
    name = "cudart",
    linkopts = ["-L{lib}", "-Wl,-rpath,{lib}", "-lcudart"],
    deps = [":cuda_headers"],
)

cc_library(
    name = "cublas",
    linkopts = ["-L{lib}", "-Wl,-rpath,{lib}", "-lcublas", "-lcublasLt"],
    deps = [":cudart"],
)

cc_library(
    name = "nccl",
    linkopts = ["-L{lib}", "-Wl,-rpath,{lib}", "-lnccl"],
    deps = [":cudart"],
)
"""

_BUILD_MISSING = """
package(default_visibility = ["//visibility:public"])

cc_library(name = "cuda_headers")

cc_library(name = "cudart")

cc_library(name = "cublas")

cc_library(name = "nccl")
"""

def _cuda_configure_impl(ctx):
    cuda_path = ctx.os.environ.get("CUDA_PATH", "/usr/local/cuda")
    nvcc = ctx.path(cuda_path + "/bin/nvcc")
    found = nvcc.exists
    if found:
        ctx.symlink(cuda_path, "cuda")
        ctx.file("BUILD", _BUILD_FOUND.format(lib = cuda_path + "/lib64"))
    else:
        ctx.file("BUILD", _BUILD_MISSING)
    ctx.file("defs.bzl", "CUDA_FOUND = {}\nCUDA_PATH = \"{}\"\nNVCC = \"{}\"\n".format(
        found,
        cuda_path,
        str(nvcc) if found else "",
    ))

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    environ = ["CUDA_PATH"],
    local = True,
)
