"""cc_proto: C++ from a .proto with the system protoc (Debian's protobuf-compiler).

    cc_proto(name = "config_cc_proto", src = "config.proto", deps = [other cc_proto targets])

defines a cc_library `name` exposing <stem>.pb.h; include it as "<package>/<stem>.pb.h".
"""

def cc_proto(name, src, deps = [], visibility = None):
    stem = src[:-len(".proto")]
    pkg = native.package_name()
    native.genrule(
        name = name + "_protoc",
        srcs = [src] + [d + "_proto_srcs" for d in deps],
        outs = [stem + ".pb.h", stem + ".pb.cc"],
        cmd = "/usr/bin/protoc --proto_path=. --cpp_out=$(GENDIR) {}/{}".format(pkg, src),
    )
    native.filegroup(
        name = name + "_proto_srcs",
        srcs = [src],
        visibility = visibility,
    )
    native.cc_library(
        name = name,
        srcs = [stem + ".pb.cc"],
        hdrs = [stem + ".pb.h"],
        deps = deps + ["//third_party:protobuf"],
        visibility = visibility,
    )
