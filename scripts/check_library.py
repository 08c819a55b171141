#!/usr/bin/env python
"""What the compiled library depends on, checked from its ELF (binutils' nm and readelf): it must
load under every torch from the one it targets, beside a torch of another CUDA major.

- Its undefined symbols are torch's stable C shims (aoti_torch_*, torch_*) and the C and C++
  runtimes' (versioned: GLIBC_, GLIBCXX_, CXXABI_, GCC_), nothing of libtorch's C++ API.
- It needs libtorch_cpu (and libtorch_cuda for the current CUDA stream), not libtorch_python, not
  libc10, not a shared CUDA runtime (it links its own, statically), and exports none of it.
- For a wheel: its tag is cp310-abi3, and it ships no test machinery (no tests, no pybind11 module
  of test hooks: the library has no PyInit).

    python scripts/check_library.py dist/mamba_state_ext-*.whl
    python scripts/check_library.py mamba_state_ext/_C.abi3.so
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SHIM = re.compile(r"^(aoti_torch_|torch_)\w+$")
RUNTIME_VERSION = re.compile(r"@(GLIBC|GLIBCXX|CXXABI|GCC)_[\d.]+$")
NEEDED_ALLOWED = {
    "libtorch_cpu.so",
    "libtorch_cuda.so",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
}
LIBRARY_IN_WHEEL = "mamba_state_ext/_C.abi3.so"
WHEEL_TAG = "cp310-abi3"


def symbols(library: Path, *options: str) -> list[tuple[str, str]]:
    """(type, name) of the dynamic symbols nm lists with the options."""
    output = subprocess.run(
        ["nm", "-D", *options, str(library)], check=True, capture_output=True, text=True
    ).stdout
    rows = [line.split() for line in output.splitlines() if line.strip()]
    return [(row[-2], row[-1]) for row in rows if len(row) >= 2]


def needed(library: Path) -> list[str]:
    output = subprocess.run(
        ["readelf", "-d", str(library)], check=True, capture_output=True, text=True
    ).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", output)


def library_problems(library: Path) -> list[str]:
    problems = []
    for kind, name in symbols(library, "--undefined-only"):
        if kind in ("w", "v") or SHIM.match(name) or RUNTIME_VERSION.search(name):
            continue
        problems.append(f"undefined symbol {name}: not a stable C shim of torch")
    for name in needed(library):
        if name not in NEEDED_ALLOWED:
            problems.append(f"needs {name}")
    for _, name in symbols(library, "--defined-only"):
        if name.startswith(("cuda", "__cuda")) or name == "PyInit__C":
            problems.append(f"exports {name}")
    return problems


def wheel_problems(wheel: Path) -> list[str]:
    problems = []
    if f"-{WHEEL_TAG}-" not in wheel.name:
        problems.append(f"{wheel.name} is not tagged {WHEEL_TAG}")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        shipped_tests = [
            name
            for name in names
            if name.startswith("tests/") or name.endswith(("testing.py", "sglang_kernels.py"))
        ]
        problems += [f"ships test machinery: {name}" for name in shipped_tests]
        if LIBRARY_IN_WHEEL not in names:
            return problems + [f"no {LIBRARY_IN_WHEEL} in the wheel"]
        with tempfile.TemporaryDirectory() as scratch:
            archive.extract(LIBRARY_IN_WHEEL, scratch)
            problems += library_problems(Path(scratch) / LIBRARY_IN_WHEEL)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a wheel, or the library itself")
    path = parser.parse_args().path
    problems = wheel_problems(path) if path.suffix == ".whl" else library_problems(path)
    for problem in problems:
        print(f"FAIL {path.name}: {problem}")
    if not problems:
        print(
            f"OK {path.name}: stable C shims only, no libtorch_python, no shared CUDA runtime"
            + (f", tagged {WHEEL_TAG}, no test machinery" if path.suffix == ".whl" else "")
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
