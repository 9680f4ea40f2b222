"""cuda_library: compiles .cu files with the system nvcc (sm_80 and sm_90) into a cc_library.

    cuda_library(name, srcs = [*.cu], hdrs = [*.h], deps = [cc deps], copts = [nvcc flags])

nvcc is called by absolute path (inside a sandbox a label-provided nvcc cannot find cicc) with
-ccbin set to the host compiler and the host's language standard (-std=c++20). Optimization follows
Bazel's compilation mode, as the host compiler's does: -c opt gives -O3 -DNDEBUG, -c dbg gives
-g -G (debuggable device code, no optimization), fastbuild neither. The objects are compiled position-independent and go into a
cc_library that links cudart. Targets built with it are incompatible (skipped by `//...`) unless
the build has --config=cuda; GPU_ONLY gives other GPU targets the same behaviour.
"""

load("@local_cuda//:defs.bzl", "CUDA_FOUND", "NVCC")

GPU_ONLY = select({
    "//tools/bazel:cuda_enabled": [],
    "//conditions:default": ["@platforms//:incompatible"],
})

_HOST_COMPILER = "/usr/bin/g++"

# nvcc flags for each --compilation_mode.
_MODE_FLAGS = {
    "opt": ["-O3", "-DNDEBUG"],
    "dbg": ["-g", "-G", "-O0"],
    "fastbuild": [],
}

_ARCH_FLAGS = [
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_90,code=sm_90",
]

def _cuda_objects_impl(ctx):
    if not CUDA_FOUND:
        fail("--config=cuda needs the CUDA toolkit: none found at $CUDA_PATH (default /usr/local/cuda)")
    contexts = [dep[CcInfo].compilation_context for dep in ctx.attr.deps]
    headers = depset(ctx.files.hdrs, transitive = [c.headers for c in contexts])
    include_flags = ["-I.", "-I" + ctx.bin_dir.path, "-I" + ctx.genfiles_dir.path]
    for c in contexts:
        include_flags += ["-I" + p for p in c.includes.to_list()]
        include_flags += ["-I" + p for p in c.quote_includes.to_list()]
        include_flags += ["-isystem=" + p for p in c.system_includes.to_list()]
        include_flags += ["-D" + d for d in c.defines.to_list()]
    mode_flags = _MODE_FLAGS[ctx.var["COMPILATION_MODE"]]
    outputs = []
    for src in ctx.files.srcs:
        stem = src.basename[:-len(src.extension) - 1]
        pic = ctx.actions.declare_file("_cuda_objs/{}/{}.pic.o".format(ctx.label.name, stem))
        ctx.actions.run(
            executable = NVCC,
            arguments = ["-ccbin", _HOST_COMPILER, "-std=c++20", "-Xcompiler", "-fPIC",
                         "--expt-relaxed-constexpr"] + mode_flags + _ARCH_FLAGS +
                        include_flags + ctx.attr.copts + ["-c", src.path, "-o", pic.path],
            inputs = depset([src], transitive = [headers]),
            outputs = [pic],
            mnemonic = "Nvcc",
            progress_message = "nvcc {}".format(src.short_path),
            use_default_shell_env = True,
        )
        outputs.append(pic)
    return [DefaultInfo(files = depset(outputs))]

_cuda_objects = rule(
    implementation = _cuda_objects_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".cu"]),
        "hdrs": attr.label_list(allow_files = [".h", ".cuh"]),
        "deps": attr.label_list(providers = [CcInfo]),
        "copts": attr.string_list(),
    },
)

def cuda_library(name, srcs, hdrs = [], deps = [], copts = [], visibility = None, **kwargs):
    _cuda_objects(
        name = name + "_objs",
        srcs = srcs,
        hdrs = hdrs,
        deps = deps,
        copts = copts,
        target_compatible_with = GPU_ONLY,
    )
    native.cc_library(
        name = name,
        srcs = [":" + name + "_objs"],
        hdrs = hdrs,
        deps = deps + ["@local_cuda//:cudart"],
        target_compatible_with = GPU_ONLY,
        visibility = visibility,
        **kwargs
    )
