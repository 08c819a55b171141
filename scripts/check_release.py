#!/usr/bin/env python
"""What scripts/build_release.sh wrote into DIR, checked as a package index and a user would:

- one sdist and one wheel of mamba_state_ext;
- the wheel: tagged cp310-abi3 with the manylinux policy that ``auditwheel show`` gives its
  symbols, depending on no library but torch's own (libtorch_cpu, libtorch_cuda: the torch
  dependency provides them) and bundling none, the stable ABI only and no test machinery
  (check_library.py), its version VERSION for the default CUDA major (build_flags.json),
  VERSION+cuNN for another, VERSION+cpu without CUDA, and the C++/CUDA sources inside (for
  mamba_state_ext.jit), under 1 MB;
- the sdist: a plain version, and everything a build needs (setup.py, pyproject.toml,
  CMakeLists.txt, the package with its sources and JSON files), no tests.

    python scripts/check_release.py dist
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from check_library import wheel_problems
from source_tree import build_config

TORCH_LIBRARIES = {"libtorch_cpu.so", "libtorch_cuda.so"}
SOURCES_LIMIT = 1 << 20
PLAIN_VERSION = re.compile(r"^\d+(\.\d+)*$")
SDIST_NEEDS = ("setup.py", "pyproject.toml", "CMakeLists.txt", "MANIFEST.in", "README.md")


def csrc_files() -> list[str]:
    """The package's sources as paths inside a wheel (mamba_state_ext/csrc/...)."""
    root = build_config.SOURCE_DIR.parent.parent
    return sorted(
        str(path.relative_to(root))
        for path in build_config.SOURCE_DIR.rglob("*")
        if path.suffix in (".h", ".cpp", ".cu")
    )


def built_cuda(library: bytes) -> str | None:
    """The CUDA the library was built with, from its build_info literal: "13000", or None."""
    match = re.search(rb"cuda=(\d+|none)", library)
    if match is None:
        raise ValueError("the library holds no build_info")
    value = match.group(1).decode()
    return None if value == "none" else value


def expected_local(cuda: str | None) -> str | None:
    if cuda is None:
        return "cpu"
    major = int(cuda) // 1000
    return None if major == build_config.DEFAULT_CUDA_MAJOR else f"cu{major}"


def wheel_release_problems(wheel: Path) -> list[str]:
    problems = wheel_problems(wheel)
    report = json.loads(
        subprocess.run(
            ["auditwheel", "show", "--json", str(wheel)], check=True, capture_output=True, text=True
        ).stdout
    )
    platform = wheel.name.removesuffix(".whl").split("-")[-1]
    if platform != report["sym_tag"]:
        problems.append(f"tagged {platform}, but its symbols allow {report['sym_tag']}")
    others = set(report["external_libs"]) - TORCH_LIBRARIES
    if others:
        problems.append(f"depends on libraries outside torch: {sorted(others)}")
    version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        bundled = sorted(name for name in names if ".libs/" in name)
        if bundled:
            problems.append(f"bundles libraries: {bundled}")
        missing = [name for name in csrc_files() if name not in names]
        if missing:
            problems.append(f"lacks its sources (mamba_state_ext.jit needs them): {missing}")
        size = sum(archive.getinfo(name).file_size for name in names if "/csrc/" in name)
        if size >= SOURCES_LIMIT:
            problems.append(f"its sources take {size} bytes, over {SOURCES_LIMIT}")
        library = archive.read("mamba_state_ext/_C.abi3.so")
    local = expected_local(built_cuda(library))
    wanted = version.split("+")[0] + (f"+{local}" if local else "")
    if version != wanted:
        problems.append(f"version {version}; a build with this CUDA is {wanted}")
    return problems


def sdist_problems(sdist: Path) -> list[str]:
    problems = []
    version = sdist.name.removesuffix(".tar.gz").split("-")[-1]
    if not PLAIN_VERSION.match(version):
        problems.append(f"version {version}: an sdist builds every variant, so no local segment")
    with tarfile.open(sdist) as archive:
        top = sdist.name.removesuffix(".tar.gz")
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    needed = [*SDIST_NEEDS, *csrc_files(), "mamba_state_ext/build_flags.json"]
    needed.append("mamba_state_ext/constants.json")
    problems += [f"lacks {name}" for name in needed if name not in names]
    problems += [f"holds {name}" for name in sorted(names) if name.startswith("tests/")]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    directory = parser.parse_args().directory
    wheels = sorted(directory.glob("mamba_state_ext-*.whl"))
    sdists = sorted(directory.glob("mamba_state_ext-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"FAIL {directory}: wants one wheel and one sdist, has {wheels + sdists}")
        return 1
    failed = False
    for artifact, problems in (
        (wheels[0], wheel_release_problems(wheels[0])),
        (sdists[0], sdist_problems(sdists[0])),
    ):
        for problem in problems:
            print(f"FAIL {artifact.name}: {problem}")
        if not problems:
            print(f"OK {artifact.name}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
