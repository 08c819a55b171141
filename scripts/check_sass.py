#!/usr/bin/env python
"""What the CUDA kernel compiles to, checked without a GPU.

Compiles mamba_state_ext/csrc/cuda/copy_cuda.cu to a cubin with the build's own flags
(build_config.py) and ``-Xptxas -v``, then reads the compiler's resource report and the SASS
(cuobjdump, from the CUDA toolkit or the triton wheel that comes with torch). It fails unless, for
every architecture: no spills, no stack frame, no local-memory instruction (LDL/STL), 128-bit
global loads and stores present (LDG.E.128 / STG.E.128, the vectorized path) with at least
kUnitsPerThread of those loads issued before the first store, and registers within the budget that
keeps kMinBlocksPerMultiprocessor blocks of kThreadsPerBlock threads resident per SM (both read
from mamba_state_ext/csrc/grid/grid.h).

    python scripts/check_sass.py                 # sm_90
    python scripts/check_sass.py --arch 8.0 9.0 10.0
    python scripts/check_sass.py --define MAMBA_STATE_BULK_COPY=1   # a variant of the sweep

A variant built with MAMBA_STATE_BULK_COPY=1 must also hold bulk copies (UBLKCP); one with
MAMBA_STATE_UNITS_PER_THREAD=K, K loads in flight.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from source_tree import build_config

KERNEL_SOURCE = build_config.SOURCE_DIR / "cuda" / "copy_cuda.cu"
KERNEL_NAME = "copy_kernel"
GRID_HEADER = build_config.SOURCE_DIR / "grid" / "grid.h"
REGISTERS_PER_SM = 65536


def grid_number(pattern: str) -> int:
    """A number of grid.h, the first group of a regular expression over its lines."""
    match = re.search(pattern, GRID_HEADER.read_text(), re.M)
    assert match, f"{GRID_HEADER} has no line matching {pattern}"
    return int(match.group(1))


def switch_value(switches: dict, name: str) -> int:
    """A kernel switch: as a variant defines it, else grid.h's default (#define NAME value)."""
    return int(switches.get(name, grid_number(rf"^#define {name} (\d+)$")))


def find_cuobjdump(cuda_home: str) -> str:
    candidates = [shutil.which("cuobjdump"), str(Path(cuda_home) / "bin" / "cuobjdump")]
    try:
        import triton

        candidates.append(str(Path(triton.__file__).parent / "backends/nvidia/bin/cuobjdump"))
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit("cuobjdump not found: install the CUDA toolkit's cuobjdump, or triton")


def compile_kernel(cuda_home: str, arch: str, cubin: Path, defines: list[str]) -> str:
    """Compiles the kernel for one architecture; returns ptxas's report."""
    import torch.utils.cpp_extension  # after CUDA_HOME is set, which it reads at import

    includes = [f"-I{path}" for path in torch.utils.cpp_extension.include_paths()]
    command = [
        str(Path(cuda_home) / "bin" / "nvcc"),
        "-cubin",
        "-o",
        str(cubin),
        str(KERNEL_SOURCE),
        "-Xptxas=-v",
        *includes,
        *torch.utils.cpp_extension.COMMON_NVCC_FLAGS,
        *build_config.nvcc_flags(),
        *(f"-D{define}" for define in defines),
        *build_config.gencode_flags(arch.removesuffix("+PTX")),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"nvcc failed for {arch}:\n{result.stderr}")
    return result.stderr


def kernel_resources(report: str) -> dict[str, int]:
    """Registers, stack frame and spills of the kernel, from ptxas's -v report."""
    lines = report.splitlines()
    start = next(
        i
        for i, line in enumerate(lines)
        if "Compiling entry function" in line and KERNEL_NAME in line
    )
    block = "\n".join(lines[start : start + 4])
    number = lambda pattern: int(re.search(pattern, block).group(1))  # noqa: E731
    return {
        "registers": number(r"Used (\d+) registers"),
        "stack_bytes": number(r"(\d+) bytes stack frame"),
        "spill_store_bytes": number(r"(\d+) bytes spill stores"),
        "spill_load_bytes": number(r"(\d+) bytes spill loads"),
    }


def sass_counts(cuobjdump: str, cubin: Path) -> dict[str, int]:
    sass = subprocess.run(
        [cuobjdump, "-sass", str(cubin)], check=True, capture_output=True, text=True
    ).stdout
    opcodes = re.findall(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", sass)
    # The longest run of 128-bit loads with no global store between them.
    loads_before_store = run = 0
    for op in opcodes:
        if op.startswith("LDG.E.128"):
            run += 1
            loads_before_store = max(loads_before_store, run)
        elif op.startswith("STG"):
            run = 0
    return {
        "LDG.E.128": sum(op.startswith("LDG.E.128") for op in opcodes),
        "STG.E.128": sum(op.startswith("STG.E.128") for op in opcodes),
        "LDL/STL": sum(op.startswith(("LDL", "STL")) for op in opcodes),
        "UBLKCP": sum(op.startswith("UBLKCP") for op in opcodes),
        "loads_before_store": loads_before_store,
        "instructions": len(opcodes),
    }


def check(arch: str, cuda_home: str, cuobjdump: str, defines: list[str]) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        cubin = Path(scratch) / "copy_cuda.cubin"
        resources = kernel_resources(compile_kernel(cuda_home, arch, cubin, defines))
        counts = sass_counts(cuobjdump, cubin)
    print(
        f"sm_{arch.replace('.', '')}: {resources['registers']} registers, "
        f"{resources['stack_bytes']} B stack, {resources['spill_store_bytes']} B spill stores, "
        f"{resources['spill_load_bytes']} B spill loads; SASS: {counts['LDG.E.128']} LDG.E.128, "
        f"{counts['STG.E.128']} STG.E.128, {counts['LDL/STL']} LDL/STL, "
        f"up to {counts['loads_before_store']} LDG.E.128 before a store, "
        f"{counts['UBLKCP']} UBLKCP, {counts['instructions']} instructions"
    )
    problems = []
    switches = dict(define.split("=", 1) for define in defines)
    blocks = switch_value(switches, "MAMBA_STATE_MIN_BLOCKS_PER_SM")
    budget = REGISTERS_PER_SM // (blocks * grid_number(r"kThreadsPerBlock = (\d+);"))
    if resources["registers"] > budget:
        problems.append(f"{resources['registers']} registers > budget {budget}")
    if resources["stack_bytes"] or resources["spill_store_bytes"] or resources["spill_load_bytes"]:
        problems.append("stack frame or spills")
    if counts["LDL/STL"]:
        problems.append("local-memory instructions (LDL/STL)")
    if not counts["LDG.E.128"] or not counts["STG.E.128"]:
        problems.append("no 128-bit global loads/stores")
    in_flight = switch_value(switches, "MAMBA_STATE_UNITS_PER_THREAD")
    if counts["loads_before_store"] < in_flight:
        problems.append(f"fewer than {in_flight} 128-bit loads in flight before a store")
    hopper = float(arch.removesuffix("+PTX").rstrip("a")) >= 9.0
    if switches.get("MAMBA_STATE_BULK_COPY", "0") != "0" and hopper and not counts["UBLKCP"]:
        problems.append("no bulk copies (UBLKCP) in the bulk-copy variant")
    return [f"sm_{arch}: {problem}" for problem in problems]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--arch",
        nargs="+",
        default=["9.0"],
        help="compute capabilities, as in TORCH_CUDA_ARCH_LIST (default 9.0)",
    )
    parser.add_argument(
        "--define",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="compile-time switches of a variant (mamba_state_ext/csrc/grid/grid.h)",
    )
    arguments = parser.parse_args()
    cuda_home = build_config.find_cuda_home()
    if cuda_home is None:
        raise SystemExit("no CUDA toolkit found (set CUDA_HOME or put nvcc on PATH)")
    os.environ["CUDA_HOME"] = cuda_home
    cuobjdump = find_cuobjdump(cuda_home)
    problems = [
        problem
        for arch in arguments.arch
        for problem in check(arch, cuda_home, cuobjdump, arguments.define)
    ]
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        switches = dict(define.split("=", 1) for define in arguments.define)
        in_flight = switch_value(switches, "MAMBA_STATE_UNITS_PER_THREAD")
        print(
            "OK: no spills, no local memory, 128-bit loads and stores, "
            f"{in_flight} loads in flight before a store"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
