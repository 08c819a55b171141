"""Makes ``torch.ops.mamba_state.update`` exist, once per process.

``MAMBA_STATE_EXT_BACKEND`` picks how: ``auto`` (the default: the compiled library if it loads,
else the Python fallback), ``compiled`` (the library or an ImportError) or ``python``.
``MAMBA_STATE_EXT_LIBRARY=/path/to/lib.so`` loads that library (a CMake or JIT build) instead of
the package's own ``_C``.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable

import torch

from . import fallback

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
    """The library's 'torch=2.14.1;cuda=13000;archs=800,900' (CUDART_VERSION and nvcc's
    __CUDA_ARCH_LIST__) as {'torch': '2.14.1', 'cuda': '13.0', 'archs': '8.0,9.0'}."""
    build = dict(item.split("=", 1) for item in info.split(";") if "=" in item)
    if build.get("cuda", "none") != "none":
        version = int(build["cuda"])
        build["cuda"] = f"{version // 1000}.{version % 1000 // 10}"
        build["archs"] = ",".join(f"{int(a) // 100}.{int(a) % 100 // 10}"
                                  for a in build["archs"].split(","))
    return build


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
        return path, _read_build_info(f"{LIBRARY_ENV}={path}")
    try:
        from . import _C
    except ImportError as error:
        raise ImportError(_explain(error, "the compiled library mamba_state_ext._C")) from error
    return _C.__file__, _read_build_info("the compiled library mamba_state_ext._C")


def _warn_if_other_torch(build: dict[str, str]) -> None:
    """A library that loaded although built against another torch: it may still break."""
    built_with = build.get("torch", "")
    running = torch.__version__.split("+")[0]
    if built_with.split(".")[:2] != running.split(".")[:2]:
        warnings.warn(
            f"mamba_state_ext: the compiled library was built against torch {built_with} but "
            f"torch {running} is running; rebuild it with: {REBUILD}",
            RuntimeWarning,
            stacklevel=3,
        )


# What this module registered from Python: the fallback's "DEF" library, or the "IMPL" library
# that sends CUDA tensors to the fallback; kept alive for the life of the process.
_python_library: torch.library.Library | None = None
_current: Backend | None = None


def _register_fallback(reason: str) -> Backend:
    global _python_library
    _python_library = torch.library.Library("mamba_state", "DEF")
    fallback.define(_python_library)
    return Backend("python", "python" if torch.version.cuda else "none", None, {}, reason)


def _read_build_info(what: str) -> dict[str, str]:
    """The loaded library's build facts, from its operator mamba_state::build_info. A library
    without it is another version's, already loaded: too late to fall back, so an error."""
    if not hasattr(torch.ops.mamba_state, "build_info"):
        raise RuntimeError(f"{what} has no mamba_state::build_info operator: it was built from "
                           f"another version of mamba_state_ext; rebuild it with: {REBUILD}")
    return parse_build_info(torch.ops.mamba_state.build_info())


def _compiled_backend(path: str, build: dict[str, str], reason: str) -> Backend:
    """Registers the fake kernel for a library just loaded, and Python for CUDA tensors if the
    library has no CUDA kernel."""
    global _python_library
    _warn_if_other_torch(build)
    for name, fake in fallback.FAKES.items():
        torch.library.register_fake(f"mamba_state::{name}", fake)
    if build.get("cuda", "none") != "none":
        return Backend("compiled", "compiled", path, build, reason)
    if torch.version.cuda is None:
        return Backend("compiled", "none", path, build, reason)
    _python_library = torch.library.Library("mamba_state", "IMPL")
    for name, implementation in fallback.IMPLEMENTATIONS.items():
        _python_library.impl(name, implementation, "CUDA")
    return Backend("compiled", "python", path, build, f"{reason}; library built without CUDA")


def load() -> Backend:
    """Called once, by importing the package."""
    global _current
    choice = os.environ.get(BACKEND_ENV, "auto")
    if choice not in ("auto", "compiled", "python"):
        raise ValueError(f"{BACKEND_ENV} must be auto, compiled or python (got {choice!r})")
    if choice == "python":
        _current = _register_fallback(f"{BACKEND_ENV}=python")
        return _current
    try:
        path, build = _load_library()
    except ImportError as error:
        if choice == "compiled":
            raise
        _current = _register_fallback(f"Python fallback: {error}")
        return _current
    _current = _compiled_backend(path, build, f"{BACKEND_ENV}={choice}")
    return _current


def current() -> Backend:
    return _current


def replace_fallback(load_library: Callable[[], str], reason: str) -> Backend:
    """Swaps the Python fallback for the library that ``load_library`` loads (and returns the path
    of); an operator namespace can be defined only once per process, so the fallback's definition
    goes first. If loading fails, the fallback comes back."""
    global _current
    assert _current.name == "python", "only the Python fallback can be replaced"
    _python_library._destroy()
    try:
        path = load_library()
    except BaseException:
        _current = _register_fallback(_current.reason)
        raise
    _current = _compiled_backend(path, _read_build_info(path), reason)
    return _current
