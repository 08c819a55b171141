"""SGLang 0.5.23's own Mamba state kernels, loaded from its wheel at run time: the baseline of the
benchmark and the parity tests (none of SGLang's code is part of this repository).

The kernel files are read from the wheel by path, under stub ``sglang.*`` parent modules, so that
SGLang's package ``__init__`` (and its heavy imports) never runs. On the CPU they run under the
Triton interpreter; their public wrappers refuse CPU tensors, so that one device test is relaxed
in the copy loaded for the CPU.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
import zipfile
from pathlib import Path

VERSION = "0.5.23"
WHEEL_ENV = "MAMBA_STATE_EXT_SGLANG_WHEEL"
# Where .ci/run and `pip download --no-deps sglang==0.5.23 -d build/wheels` put the wheel.
DEFAULT_WHEEL_DIR = Path(__file__).resolve().parents[2] / "build" / "wheels"
SCATTER = "sglang/kernels/ops/mamba/mamba_state_scatter_triton.py"
PTR_TABLE = "sglang/kernels/ops/memory/ptr_table.py"
TOKEN_MAJOR = "sglang/srt/mem_cache/layout/token_major.py"
# The device test of the public wrappers, and what it becomes for CPU tensors.
CUDA_ONLY = "(dst.is_cuda or dst.is_xpu)"
CPU_TOO = "(dst.is_cuda or dst.is_xpu or dst.is_cpu)"


class Unavailable(RuntimeError):
    """SGLang's kernels cannot be loaded here; the message says why."""


def find_wheel(path: str | os.PathLike | None = None) -> Path:
    """The wheel: ``path``, else $MAMBA_STATE_EXT_SGLANG_WHEEL, else build/wheels/ of the source
    tree. Raises Unavailable with the command that fetches it."""
    candidates = [Path(p) for p in (path, os.environ.get(WHEEL_ENV)) if p]
    candidates += sorted(DEFAULT_WHEEL_DIR.glob(f"sglang-{VERSION}-*.whl"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise Unavailable(f"no sglang {VERSION} wheel: pip download --no-deps sglang=={VERSION} "
                      f"-d {DEFAULT_WHEEL_DIR} (or set {WHEEL_ENV})")


def _extract(wheel: Path, members: list[str], *, on_cpu: bool) -> Path:
    """The members, unpacked beside the wheel (the CPU copy with its device test relaxed)."""
    root = wheel.parent / f"{wheel.stem}-{'cpu' if on_cpu else 'cuda'}"
    with zipfile.ZipFile(wheel) as archive:
        for member in members:
            target = root / member
            text = archive.read(member).decode()
            if on_cpu and member == SCATTER:
                if CUDA_ONLY not in text:
                    raise Unavailable(f"{member} no longer has the device test {CUDA_ONLY}")
                text = text.replace(CUDA_ONLY, CPU_TOO)
            if not target.is_file() or target.read_text() != text:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    return root


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _stub_packages(names: list[str]):
    """Empty modules for SGLang's parent packages, removed again afterwards."""
    saved = {name: sys.modules.get(name) for name in names}
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _device_core_count(device_index: int = 0) -> int:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(device_index).multi_processor_count
    return 4


def load_scatter_kernels(wheel: str | os.PathLike | None = None, *, on_cpu: bool = False):
    """SGLang's ``mamba_state_scatter_triton`` module. ``on_cpu``: for CPU tensors, under the
    Triton interpreter (its @triton.jit functions are made interpreted at load time)."""
    try:
        import triton  # noqa: F401
    except ImportError as error:
        raise Unavailable(f"triton is not installed ({error})") from error
    root = _extract(find_wheel(wheel), [SCATTER, PTR_TABLE], on_cpu=on_cpu)
    packages = ["sglang", "sglang.kernels", "sglang.kernels.ops", "sglang.kernels.ops.memory",
                "sglang.kernels.ops.memory.ptr_table", "sglang.srt", "sglang.srt.utils",
                "sglang.srt.utils.common"]
    interpret = os.environ.get("TRITON_INTERPRET")
    with _stub_packages(packages):
        sys.modules["sglang.srt.utils.common"].get_device_core_count = _device_core_count
        _load("sglang.kernels.ops.memory.ptr_table", root / PTR_TABLE)
        if on_cpu:
            os.environ["TRITON_INTERPRET"] = "1"
        try:
            return _load(f"mamba_state_ext_sglang_scatter_{'cpu' if on_cpu else 'cuda'}",
                         root / SCATTER)
        finally:
            if interpret is None:
                os.environ.pop("TRITON_INTERPRET", None)
            else:
                os.environ["TRITON_INTERPRET"] = interpret


def load_token_major(wheel: str | os.PathLike | None = None):
    """SGLang's ``mem_cache.layout.token_major`` (``build_mamba_entry_views``, the envelope
    layout); it needs ``msgspec``."""
    try:
        import msgspec  # noqa: F401
    except ImportError as error:
        raise Unavailable(f"msgspec is not installed ({error})") from error
    root = _extract(find_wheel(wheel), [TOKEN_MAJOR], on_cpu=False)
    return _load("mamba_state_ext_sglang_token_major", root / TOKEN_MAJOR)
