"""How the library is built: sources, flags, CUDA toolkit and architectures.

For ``setup.py`` and ``mamba_state_ext.jit``. The flags and the release architectures are in
``build_flags.json`` beside this file, which ``CMakeLists.txt`` reads too. Imports nothing from
torch, so that ``setup.py`` can set ``CUDA_HOME`` before ``torch.utils.cpp_extension`` reads it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_FLAGS = json.loads((_HERE / "build_flags.json").read_text())
CONSTANTS = json.loads((_HERE / "constants.json").read_text())
SOURCE_DIR = _HERE / "csrc"

# Architectures of a release build: Ampere, Ada, Hopper, Blackwell (data centre and RTX), plus PTX
# for later cards; each with the first CUDA release that knows it. TORCH_CUDA_ARCH_LIST overrides.
RELEASE_ARCHS = tuple(
    (arch, tuple(int(part) for part in since.split("."))) for arch, since in _FLAGS["release_archs"]
)

# The oldest torch whose stable ABI the library targets: it loads under that torch and every
# later one, whichever torch it was built against.
TORCH_TARGET = tuple(int(part) for part in _FLAGS["torch_target"].split("."))
TARGET_DEFINE = f"-DTORCH_TARGET_VERSION=0x{TORCH_TARGET[0]:02x}{TORCH_TARGET[1]:02x}000000000000"
# The CUDA major of a release's main wheel (the one torch's own default wheels use); a build for
# another major is versioned +cuNN (setup.py).
DEFAULT_CUDA_MAJOR: int = _FLAGS["default_cuda_major"]
# No --use_fast_math: conversions must round and keep denormals exactly as Tensor.to does.
CXX_FLAGS = _FLAGS["cxx_flags"]
NVCC_FLAGS = _FLAGS["nvcc_flags"]
WITH_CUDA_DEFINE = "-DMAMBA_STATE_WITH_CUDA"

CUDA_ENV = "MAMBA_STATE_EXT_CUDA"  # 1: build the CUDA kernel or fail; 0: skip it; unset: auto


def constant_defines() -> list[str]:
    """constants.json as the definitions csrc/constants.h reads."""
    values = {
        "MAX_STATE_DIMS": CONSTANTS["max_state_dims"],
        "OVERLAP_BUDGET": CONSTANTS["overlap_budget"],
        "MAX_FOLLOWED_BLOCKS": CONSTANTS["max_followed_blocks"],
    }
    values.update(
        {f"STATUS_{bound.upper()}": bit for bound, bit in CONSTANTS["entry_status"].items()}
    )
    return [f"-DMAMBA_STATE_{name}={value}" for name, value in values.items()]


def sources(*, with_cuda: bool, relative_to: Path | None = None) -> list[str]:
    """The translation units of csrc/ (beside this file: the package ships its sources, for
    mamba_state_ext.jit): csrc/ and csrc/cpu/, and with CUDA the grid's launch plan (csrc/grid/)
    and the kernel (csrc/cuda/). Absolute paths, or relative to ``relative_to``."""
    files = sorted(SOURCE_DIR.glob("*.cpp")) + sorted(SOURCE_DIR.glob("cpu/*.cpp"))
    if with_cuda:
        files += sorted(SOURCE_DIR.glob("grid/*.cpp")) + sorted(SOURCE_DIR.glob("cuda/*.cu"))
    if relative_to is not None:
        return [str(f.relative_to(relative_to.resolve())) for f in files]
    return [str(f) for f in files]


def cxx_flags(with_cuda: bool) -> list[str]:
    return (
        CXX_FLAGS + [TARGET_DEFINE] + constant_defines() + ([WITH_CUDA_DEFINE] if with_cuda else [])
    )


def nvcc_flags() -> list[str]:
    return NVCC_FLAGS + [TARGET_DEFINE] + constant_defines() + [WITH_CUDA_DEFINE]


def libraries(with_cuda: bool) -> list[str]:
    """What the library links: libtorch_cpu (the stable C shims), and with CUDA libtorch_cuda
    (the current CUDA stream's shim) and the CUDA runtime, statically (link_flags)."""
    return ["torch_cpu"] + (
        ["torch_cuda", "cudart_static", "rt", "dl", "pthread"] if with_cuda else []
    )


def link_flags(with_cuda: bool) -> list[str]:
    """The static CUDA runtime's symbols stay inside the library: a torch of another CUDA major
    loads its own runtime globally, which must not take the place of ours."""
    return ["-Wl,--exclude-libs,libcudart_static.a"] if with_cuda else []


def _is_toolkit(path: Path) -> bool:
    return (path / "bin" / "nvcc").is_file() and (path / "include" / "cuda_runtime.h").is_file()


def find_cuda_home() -> str | None:
    """The CUDA toolkit: $CUDA_HOME or $CUDA_PATH, else the toolkit of the nvcc on PATH (seen
    through wrapper scripts, which torch's guess is not), else /usr/local/cuda."""
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(variable):
            return os.environ[variable]
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(Path(nvcc).resolve().parent.parent)
    candidates.append(Path("/usr/local/cuda"))
    for candidate in candidates:
        if _is_toolkit(candidate):
            return str(candidate)
    return None


def nvcc_version(cuda_home: str) -> tuple[int, int]:
    output = subprocess.run(
        [str(Path(cuda_home) / "bin" / "nvcc"), "--version"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    major, minor = re.search(r"release (\d+)\.(\d+)", output).groups()
    return int(major), int(minor)


def release_arch_list(cuda_version: tuple[int, int]) -> str:
    """The architectures of a release build with this nvcc: all it knows, PTX on the last."""
    archs = [arch for arch, since in RELEASE_ARCHS if cuda_version >= since]
    return ";".join(archs) + "+PTX"


def gencode_flags(arch_list: str) -> list[str]:
    """nvcc flags for a TORCH_CUDA_ARCH_LIST-style list such as "8.0;9.0+PTX"."""
    flags = []
    for arch in arch_list.replace(" ", ";").split(";"):
        if not arch:
            continue
        match = re.fullmatch(r"(\d+)\.(\d+)(a?)(\+PTX)?", arch)
        if match is None:
            raise ValueError(f"unknown CUDA architecture {arch!r} in {arch_list!r}")
        major, minor, suffix, ptx = match.groups()
        number = f"{major}{minor}{suffix}"
        flags.append(f"-gencode=arch=compute_{number},code=sm_{number}")
        if ptx:
            flags.append(f"-gencode=arch=compute_{number},code=compute_{number}")
    return flags


def cuda_arch_flags(cuda_home: str) -> list[str]:
    """TORCH_CUDA_ARCH_LIST when set, else the release list for this toolkit."""
    arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST") or release_arch_list(nvcc_version(cuda_home))
    return gencode_flags(arch_list)


def configure_cuda(torch_cuda_version: str | None, wanted: str | None = None) -> bool:
    """Decides whether to build the CUDA kernel; if so, sets CUDA_HOME for torch's build helpers.

    ``torch_cuda_version`` is ``torch.version.cuda`` (None for a CPU build of torch). ``wanted``
    is "1", "0" or "auto", by default ``MAMBA_STATE_EXT_CUDA`` (unset: auto). With "1" a missing
    piece is an error; with "auto", CUDA is built when a CUDA build of torch and a toolkit of its
    CUDA major are both present.
    """
    wanted = wanted or os.environ.get(CUDA_ENV, "auto")
    if wanted not in ("0", "1", "auto"):
        raise ValueError(f"{CUDA_ENV} must be 0, 1 or auto (got {wanted!r})")
    if wanted == "0":
        return False
    cuda_home = find_cuda_home()
    missing = None
    if torch_cuda_version is None:
        missing = "torch is a CPU build (install a CUDA build of torch)"
    elif cuda_home is None:
        missing = "no CUDA toolkit found (set CUDA_HOME or put nvcc on PATH)"
    elif nvcc_version(cuda_home)[0] != int(torch_cuda_version.split(".")[0]):
        # torch's build helpers refuse to compile CUDA code for another CUDA major than torch's.
        major, minor = nvcc_version(cuda_home)
        missing = (
            f"the CUDA toolkit in {cuda_home} is {major}.{minor} and torch is built with CUDA "
            f"{torch_cuda_version} (set CUDA_HOME to a toolkit of CUDA "
            f"{torch_cuda_version.split('.')[0]})"
        )
    if missing:
        if wanted == "1":
            raise RuntimeError(f"{CUDA_ENV}=1 but {missing}")
        print(f"mamba_state_ext: building without CUDA: {missing}")
        return False
    os.environ["CUDA_HOME"] = cuda_home
    return True
