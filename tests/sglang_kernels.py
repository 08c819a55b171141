"""SGLang's own code for the parity and plugin tests, one copy per release of SGLANG_RELEASES:

- its Mamba state kernels, through the benchmark's loader (mamba_state_ext.bench.sglang_baseline),
  from the release's wheel or a folder of files extracted from it, looked for in the folder
  $MAMBA_STATE_EXT_SGLANG_WHEELS, in build/wheels/ (scripts/install_sglang.sh downloads the
  wheels there) and in build/gpu-check/sglang/ (scripts/prepare_gpu_check.sh extracts them
  there). On the CPU they run under the Triton interpreter, and take pools that say they are on
  CUDA (LooksCuda), since their wrappers test ``dst.is_cuda``; SGLang's source is used as it is.
- the release installed aside (build/sglang/RELEASE, ``pip install --target``; install_sglang.sh),
  for a process that runs SGLang's own plugin loader with it on its path.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import torch

from mamba_state_ext.bench import sglang_baseline

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ENV = "MAMBA_STATE_EXT_SGLANG_WHEELS"
SOURCE_DIRS = (ROOT / "build" / "wheels", ROOT / "build" / "gpu-check" / "sglang")
SITES = ROOT / "build" / "sglang"
TOKEN_MAJOR_MODULE = "sglang.srt.mem_cache.layout.token_major"
# What the tests and the benchmark read of a release: what prepare_gpu_check.sh extracts.
MODULES = (*sglang_baseline.KERNEL_MODULES, TOKEN_MAJOR_MODULE)
INSTALL = "bash scripts/install_sglang.sh"


class Unavailable(RuntimeError):
    """SGLang's code cannot be loaded here; the message says why."""


class LooksCuda(torch.Tensor):
    """A CPU tensor whose ``is_cuda`` is True, for SGLang's wrappers on the CPU (their kernels
    then run under the Triton interpreter)."""

    @property
    def is_cuda(self) -> bool:
        return True


def looks_cuda(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(LooksCuda) if tensor.device.type == "cpu" else tensor


def find_source(release: str) -> Path | None:
    """The release's wheel, or a folder extracted from it, in $MAMBA_STATE_EXT_SGLANG_WHEELS or
    SOURCE_DIRS; None if there is neither."""
    folders = [Path(os.environ[SOURCE_ENV])] if os.environ.get(SOURCE_ENV) else []
    for folder in folders + list(SOURCE_DIRS):
        candidates = sorted(folder.glob(f"sglang-{release}-*"))
        # A wheel first: a folder beside it may hold only what the benchmark extracted.
        for candidate in [c for c in candidates if c.suffix == ".whl"] + candidates:
            if candidate.suffix == ".whl" or candidate.is_dir():
                return candidate
    return None


def _source(release: str) -> Path:
    source = find_source(release)
    if source is None:
        raise Unavailable(f"no sglang {release} wheel in {SOURCE_DIRS[0]}: {INSTALL}")
    return source


def load_scatter_kernels(release: str, *, on_cpu: bool = False):
    """The release's ``mamba_state_scatter_triton``; ``on_cpu``: its @triton.jit functions made
    interpreted (TRITON_INTERPRET is read when they are defined)."""
    try:
        import triton  # noqa: F401
    except ImportError as error:
        raise Unavailable(f"triton is not installed ({error})") from error
    source = _source(release)
    interpret = os.environ.get("TRITON_INTERPRET")
    if on_cpu:
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        return sglang_baseline.load_scatter(source)
    except ImportError as error:
        raise Unavailable(f"{error}; {INSTALL}") from error
    finally:
        if interpret is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = interpret


def load_token_major(release: str):
    """The release's ``mem_cache.layout.token_major`` (``build_mamba_entry_views``, the envelope
    layout); it needs ``msgspec``."""
    try:
        import msgspec  # noqa: F401
    except ImportError as error:
        raise Unavailable(f"msgspec is not installed ({error})") from error
    source = _source(release)
    try:
        root = sglang_baseline.files_of(source, [TOKEN_MAJOR_MODULE])
    except ImportError as error:
        raise Unavailable(str(error)) from error
    member = sglang_baseline.member_path(TOKEN_MAJOR_MODULE)
    name = f"mamba_state_ext_sglang_token_major_{release.replace('.', '_')}"
    return sglang_baseline.load_file(name, root / member)


def site(release: str) -> Path | None:
    """The folder where the release is installed aside, if it is."""
    folder = SITES / release
    return folder if (folder / "sglang" / "__init__.py").is_file() else None


def imports_missing() -> list[str]:
    """The packages of tests/sglang-imports.txt (what importing SGLang's plugin loader and
    attention backend needs) that this environment lacks."""
    missing = []
    for line in (ROOT / "tests" / "sglang-imports.txt").read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if requirement:
            name = requirement.split("==")[0]
            try:
                importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                missing.append(name)
    return missing


def extract_for_gpu_check(wheel: Path, folder: Path) -> Path:
    """The files the tests and the benchmark read, extracted from a wheel into folder/<wheel's
    name> (prepare_gpu_check.sh: a GPU machine carries these, not the wheel)."""
    members = [sglang_baseline.member_path(module) for module in MODULES]
    return sglang_baseline.extract(wheel, members, folder / wheel.name.removesuffix(".whl"))


if __name__ == "__main__":  # python tests/sglang_kernels.py WHEEL FOLDER
    import sys

    print(extract_for_gpu_check(Path(sys.argv[1]), Path(sys.argv[2])))
