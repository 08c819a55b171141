#!/usr/bin/env python
"""Builds a variant of the operator library, the kernel's compile-time switches
(mamba_state_ext/csrc/grid/grid.h) set as given, for the GPU check's sweep
(scripts/kernel_variants.txt, scripts/prepare_gpu_check.sh). It goes through the CMake build,
which compiles the same sources with the same flags as the wheel and links the CUDA runtime
statically as the wheel does, so that a variant differs from the wheel's library by its switches
alone. TORCH_CUDA_ARCH_LIST picks the architectures, as for every build. Prints the library's
path; the benchmark takes it as MAMBA_STATE_EXT_LIBRARY.

    TORCH_CUDA_ARCH_LIST=9.0 python scripts/build_variant.py build/variants/bulk \\
        MAMBA_STATE_BULK_COPY=1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch.utils
from source_tree import ROOT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("defines", nargs="*", help="NAME=VALUE switches")
    arguments = parser.parse_args()
    defines = " ".join(f"-D{define}" for define in arguments.defines)
    directory = arguments.directory.resolve()
    configure = [
        "cmake",
        "-S",
        str(ROOT),
        "-B",
        str(directory),
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        "-DMAMBA_STATE_WITH_CUDA=ON",
        "-DMAMBA_STATE_BUILD_TESTS=OFF",
        f"-DCMAKE_CXX_FLAGS={defines}",
        f"-DCMAKE_CUDA_FLAGS={defines}",
    ]
    jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
    for command in (configure, ["cmake", "--build", str(directory), "-j", jobs]):
        if subprocess.run(command, stdout=sys.stderr).returncode != 0:
            return 1
    print(directory / "libmamba_state_ops.so")
    return 0


if __name__ == "__main__":
    sys.exit(main())
