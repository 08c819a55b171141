#!/usr/bin/env python
"""Builds a variant of the operator library, the kernel's compile-time switches (csrc/grid/grid.h)
set as given, for the GPU check's sweep (scripts/gpu_check.sh): the same sources and flags as
every build path, through torch.utils.cpp_extension.load, for the GPU of this machine (or
TORCH_CUDA_ARCH_LIST). Prints the library's path; the benchmark takes it as
MAMBA_STATE_EXT_LIBRARY.

    python scripts/build_variant.py build/variants/bulk MAMBA_STATE_BULK_COPY=1
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from source_tree import ROOT, build_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("defines", nargs="*", help="NAME=VALUE switches")
    arguments = parser.parse_args()
    if not build_config.configure_cuda(torch.version.cuda, "1"):
        return 1
    import torch.utils.cpp_extension as cpp_extension

    cpp_extension.CUDA_HOME = os.environ["CUDA_HOME"]
    defines = [f"-D{define}" for define in arguments.defines]
    arguments.directory.mkdir(parents=True, exist_ok=True)
    name = "mamba_state_variant_" + (
        "_".join(
            define.replace("MAMBA_STATE_", "").replace("=", "").replace(".", "").lower()
            for define in arguments.defines
        )
        or "default"
    )
    cpp_extension.load(
        name=name,
        sources=[str(ROOT / path) for path in build_config.sources(ROOT, with_cuda=True)],
        build_directory=str(arguments.directory),
        extra_cflags=build_config.cxx_flags(True) + defines,
        extra_cuda_cflags=build_config.nvcc_flags() + defines,
        with_cuda=True,
        is_python_module=False,
    )
    print(arguments.directory / f"{name}.so")
    return 0


if __name__ == "__main__":
    sys.exit(main())
