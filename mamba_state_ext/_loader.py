"""Makes ``torch.ops.mamba_state.update`` exist, once per process.

``MAMBA_STATE_EXT_BACKEND`` picks how: ``auto`` (the default: the compiled library if it loads,
else the Python fallback), ``compiled`` (the library or an ImportError) or ``python``.
``MAMBA_STATE_EXT_LIBRARY=/path/to/lib.so`` loads that library (a CMake or JIT build) instead of
the package's own ``_C``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import warnings

import torch

from . import checks, fallback

BACKEND_ENV = "MAMBA_STATE_EXT_BACKEND"
LIBRARY_ENV = "MAMBA_STATE_EXT_LIBRARY"
REBUILD = "pip install --no-build-isolation -e ."


@dataclasses.dataclass(frozen=True)
class Backend:
    """What serves ``torch.ops.mamba_state.update`` in this process, and why."""

    name: str  # "compiled" or "python"
    cuda: str  # what serves CUDA tensors: "compiled", "python" (fallback), or "none"
    library: str | None  # the loaded library's path
    build: dict[str, str]  # the library's build facts: torch, cuda, archs
    reason: str

    def __str__(self) -> str:
        where = f" ({self.library})" if self.library else ""
        facts = ", ".join(f"{key} {value}" for key, value in self.build.items())
        built = f"; built with {facts}" if facts else ""
        return f"{self.name}{where}; CUDA tensors: {self.cuda}{built}; {self.reason}"


def parse_build_info(info: str) -> dict[str, str]:
    """'torch=2.14.1;cuda=13000;archs=800,900' -> {'torch': '2.14.1', ...}."""
    return dict(item.split("=", 1) for item in info.split(";") if "=" in item)


def _explain(error: BaseException, what: str) -> str:
    message = str(error)
    if "undefined symbol" in message:
        return (
            f"{what} does not match the running torch {torch.__version__} ({message}); "
            f"rebuild it with: {REBUILD}"
        )
    if isinstance(error, ModuleNotFoundError):
        return f"{what} is not built ({message}); build it with: {REBUILD}"
    return f"{what} failed to load: {message}"


def _load_library() -> tuple[str, dict[str, str]]:
    """Loads the compiled library; returns its path and build facts, or raises ImportError."""
    path = os.environ.get(LIBRARY_ENV)
    if path:
        try:
            torch.ops.load_library(path)
        except (OSError, RuntimeError) as error:
            raise ImportError(_explain(error, f"{LIBRARY_ENV}={path}")) from error
        read_info = ctypes.CDLL(path).mamba_state_build_info
        read_info.restype = ctypes.c_char_p
        return path, parse_build_info(read_info().decode())
    try:
        from . import _C
    except ImportError as error:
        raise ImportError(_explain(error, "the compiled library mamba_state_ext._C")) from error
    return _C.__file__, parse_build_info(_C.build_info())


def _warn_if_other_torch(build: dict[str, str]) -> None:
    built_with = build.get("torch", "")
    running = torch.__version__.split("+")[0]
    if built_with.split(".")[:2] != running.split(".")[:2]:
        warnings.warn(
            f"mamba_state_ext: the compiled library was built against torch {built_with} but "
            f"torch {running} is running; rebuild it with: {REBUILD}",
            RuntimeWarning,
            stacklevel=3,
        )


_fallback_library: torch.library.Library | None = None


def _register_fallback(reason: str) -> Backend:
    global _fallback_library
    _fallback_library = torch.library.Library("mamba_state", "DEF")
    fallback.define(_fallback_library)
    return Backend("python", "python" if torch.version.cuda else "none", None, {}, reason)


def load() -> Backend:
    choice = os.environ.get(BACKEND_ENV, "auto")
    if choice not in ("auto", "compiled", "python"):
        raise ValueError(f"{BACKEND_ENV} must be auto, compiled or python (got {choice!r})")
    if choice == "python":
        return _register_fallback(f"{BACKEND_ENV}=python")
    try:
        path, build = _load_library()
    except ImportError as error:
        if choice == "compiled":
            raise
        return _register_fallback(f"Python fallback: {error}")
    _warn_if_other_torch(build)
    torch.library.register_fake("mamba_state::update", checks.fake_update)
    reason = f"{BACKEND_ENV}={choice}"
    if build.get("cuda", "none") != "none":
        return Backend("compiled", "compiled", path, build, reason)
    if torch.version.cuda is None:
        return Backend("compiled", "none", path, build, reason)
    # A CPU-only build inside a CUDA build of torch: CUDA tensors take the Python fallback.
    global _fallback_library
    _fallback_library = torch.library.Library("mamba_state", "IMPL")
    _fallback_library.impl("update", fallback.update, "CUDA")
    return Backend("compiled", "python", path, build, f"{reason}; library built without CUDA")
