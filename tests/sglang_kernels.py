"""SGLang's own Mamba state kernels for the parity tests, through the benchmark's loader
(mamba_state_ext.bench.sglang_baseline): from the wheel in build/wheels/ (or
$MAMBA_STATE_EXT_SGLANG_WHEEL), else the installed sglang. On the CPU they run under the Triton
interpreter, and take pools that say they are on CUDA (LooksCuda), since their wrappers test
``dst.is_cuda``; SGLang's source is used as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mamba_state_ext.bench import sglang_baseline
from mamba_state_ext.integrations.sglang import VERSION

WHEEL_ENV = "MAMBA_STATE_EXT_SGLANG_WHEEL"
# Where .ci/run and `pip download --no-deps sglang==VERSION -d build/wheels` put the wheel.
DEFAULT_WHEEL_DIR = Path(__file__).resolve().parents[1] / "build" / "wheels"
TOKEN_MAJOR_MODULE = "sglang.srt.mem_cache.layout.token_major"


class Unavailable(RuntimeError):
    """SGLang's kernels cannot be loaded here; the message says why."""


class LooksCuda(torch.Tensor):
    """A CPU tensor whose ``is_cuda`` is True, for SGLang's wrappers on the CPU (their kernels
    then run under the Triton interpreter)."""

    @property
    def is_cuda(self) -> bool:
        return True


def looks_cuda(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(LooksCuda) if tensor.device.type == "cpu" else tensor


def find_wheel() -> Path | None:
    """$MAMBA_STATE_EXT_SGLANG_WHEEL, else the wheel in build/wheels/, else None."""
    candidates = [Path(os.environ[WHEEL_ENV])] if os.environ.get(WHEEL_ENV) else []
    candidates += sorted(DEFAULT_WHEEL_DIR.glob(f"sglang-{VERSION}-*.whl"))
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def load_scatter_kernels(*, on_cpu: bool = False):
    """SGLang's ``mamba_state_scatter_triton``; ``on_cpu``: its @triton.jit functions made
    interpreted (TRITON_INTERPRET is read when they are defined)."""
    try:
        import triton  # noqa: F401
    except ImportError as error:
        raise Unavailable(f"triton is not installed ({error})") from error
    interpret = os.environ.get("TRITON_INTERPRET")
    if on_cpu:
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        return sglang_baseline.load_scatter(find_wheel())
    except ImportError as error:
        raise Unavailable(
            f"{error}; or: pip download --no-deps sglang=={VERSION} -d {DEFAULT_WHEEL_DIR}"
        ) from error
    finally:
        if interpret is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = interpret


def load_token_major():
    """SGLang's ``mem_cache.layout.token_major`` (``build_mamba_entry_views``, the envelope
    layout); it needs ``msgspec``."""
    try:
        import msgspec  # noqa: F401
    except ImportError as error:
        raise Unavailable(f"msgspec is not installed ({error})") from error
    wheel = find_wheel()
    if wheel is None:
        raise Unavailable(
            f"no sglang {VERSION} wheel: pip download --no-deps sglang=={VERSION} "
            f"-d {DEFAULT_WHEEL_DIR} (or set {WHEEL_ENV})"
        )
    member = sglang_baseline.member_path(TOKEN_MAJOR_MODULE)
    root = sglang_baseline.extract(wheel, [member])
    return sglang_baseline.load_file("mamba_state_ext_sglang_token_major", root / member)
