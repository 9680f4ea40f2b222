"""gpu_test: a GPU kernel test of model/cuda (tagged "gpu", built only with --config=cuda).

    gpu_test(name = "foo_test", deps = [...])

compiles foo_test.cc with //core:gpu_test_main (skips all tests without a CUDA device) and the package's :test_util.
"""

load("//tools/bazel:cuda.bzl", "GPU_ONLY")

def gpu_test(name, deps):
    native.cc_test(
        name = name,
        size = "small",
        srcs = [name + ".cc"],
        tags = ["gpu"],
        target_compatible_with = GPU_ONLY,
        deps = deps + [
            ":test_util",
            "//core:gpu_test_main",
        ],
    )
