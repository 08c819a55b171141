"""Makes ``torch.ops.mamba_state.update`` exist, once per process.

``MAMBA_STATE_EXT_BACKEND`` picks how: ``auto`` (the default: the compiled library if it loads,
else the Python fallback), ``compiled`` (the library or an ImportError) or ``python``.
``MAMBA_STATE_EXT_LIBRARY=/path/to/lib.so`` loads that library (a CMake or JIT build) instead of
the package's own ``_C.abi3.so``. The library uses torch's stable ABI only, so it loads under
every torch from the one it targets (build_flags.json's torch_target) on. A library that defined
the operators before the package was imported (loaded by torch.ops.load_library) goes on serving
them, and ``backend()`` says so.
"""

from __future__ import annotations

import dataclasses
import importlib.machinery
import os
from collections.abc import Callable
from pathlib import Path

import torch

from . import build_config, fallback

BACKEND_ENV = "MAMBA_STATE_EXT_BACKEND"
LIBRARY_ENV = "MAMBA_STATE_EXT_LIBRARY"
# How to build the library; a released wheel ships it built.
BUILD = "pip install --no-build-isolation . (in a checkout or an unpacked sdist; docs/building.md)"
# The package's extension module: mamba_state_ext/_C.abi3.so.
LIBRARY_NAME = "_C"


@dataclasses.dataclass(frozen=True)
class Backend:
    """What serves ``torch.ops.mamba_state.update`` in this process, and why."""

    name: str  # "compiled" or "python"
    cuda: str  # what serves CUDA tensors: "compiled", "python" (fallback), or "none"
    library: str | None  # the loaded library's path
    # The library's build_info: its build (torch, target, cuda, archs) and the instructions its
    # CPU kernel's quantize loops run with in this process (cpu: default, avx2 or avx512).
    build: dict[str, str]
    reason: str

    def __str__(self) -> str:
        where = f" ({self.library})" if self.library else ""
        facts = ", ".join(f"{key} {value}" for key, value in self.build.items() if key != "cpu")
        built = f"; built with {facts}" if facts else ""
        loops = f"; CPU loops: {self.build['cpu']}" if "cpu" in self.build else ""
        return f"{self.name}{where}; CUDA tensors: {self.cuda}{built}{loops}; {self.reason}"


def parse_build_info(info: str) -> dict[str, str]:
    """The library's 'torch=2.14.1;target=2.10;cuda=13000;archs=800,900;cpu=avx512'
    (CUDART_VERSION and nvcc's __CUDA_ARCH_LIST__) as {'torch': '2.14.1', 'target': '2.10',
    'cuda': '13.0', 'archs': '8.0,9.0', 'cpu': 'avx512'}."""
    build = dict(item.split("=", 1) for item in info.split(";") if "=" in item)
    if build.get("cuda", "none") != "none":
        version = int(build["cuda"])
        build["cuda"] = f"{version // 1000}.{version % 1000 // 10}"
        build["archs"] = ",".join(
            f"{int(a) // 100}.{int(a) % 100 // 10}" for a in build["archs"].split(",")
        )
    return build


def torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def package_library() -> Path | None:
    """The package's own library, mamba_state_ext/_C.abi3.so (any extension suffix)."""
    finder = importlib.machinery.FileFinder(
        str(Path(__file__).parent),
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    )
    spec = finder.find_spec(LIBRARY_NAME)
    return Path(spec.origin) if spec is not None else None


def _explain(error: BaseException, what: str) -> str:
    # torch.ops.load_library says only "Could not load this library"; the loader's own words
    # are in the exception it raises from.
    message = str(error if error.__cause__ is None else error.__cause__)
    if "libtorch_cuda.so" in message and torch.version.cuda is None:
        return (
            f"{what} is a CUDA build, and torch {torch.__version__} is a CPU build "
            f"({message}); install a CUDA build of torch, or build mamba_state_ext without "
            f"CUDA: MAMBA_STATE_EXT_CUDA=0 {BUILD}"
        )
    if "undefined symbol" in message:
        return (
            f"{what} needs a newer torch than {torch.__version__} ({message}); it was built "
            f"for torch {'.'.join(map(str, build_config.TORCH_TARGET))} or later"
        )
    return f"{what} failed to load: {message}"


def _load_library() -> tuple[str, dict[str, str]]:
    """Loads the compiled library; returns its path and build facts, or raises ImportError."""
    target = build_config.TORCH_TARGET
    if torch_version() < target:
        raise ImportError(
            f"torch {torch.__version__} is older than {target[0]}.{target[1]}, the oldest torch "
            f"the compiled library supports; upgrade torch (pip install 'torch>="
            f"{target[0]}.{target[1]}')"
        )
    path = os.environ.get(LIBRARY_ENV)
    what = f"{LIBRARY_ENV}={path}"
    if not path:
        found = package_library()
        if found is None:
            raise ImportError(
                f"the compiled library mamba_state_ext/{LIBRARY_NAME}.abi3.so is "
                f"not built; build it with: {BUILD}, or install a released wheel"
            )
        path, what = str(found), f"the compiled library {found}"
    try:
        torch.ops.load_library(path)
    except (OSError, RuntimeError) as error:
        raise ImportError(_explain(error, what)) from error
    return path, _read_build_info(what)


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
        raise RuntimeError(
            f"{what} has no mamba_state::build_info operator: it was built from "
            f"another version of mamba_state_ext; rebuild it with: {BUILD}, or reinstall a "
            "released wheel"
        )
    return parse_build_info(torch.ops.mamba_state.build_info())


def _defined_already() -> bool:
    """Whether mamba_state's operators exist before this module loads anything: a library
    loaded into the process first (torch.ops.load_library of a CMake build, say) defined them."""
    try:
        torch.ops.mamba_state.update  # noqa: B018
    except AttributeError:
        return False
    return True


def _adopt_defined(choice: str) -> Backend:
    """The backend when another library defined the operators first; it goes on serving them."""
    libraries = sorted(torch.ops.loaded_libraries)
    loaded = ", ".join(libraries) or "none by torch.ops.load_library"
    what = "the library that defined mamba_state's operators before mamba_state_ext loaded"
    asked = os.environ.get(LIBRARY_ENV)
    if choice == "python" or (
        asked and os.path.realpath(asked) not in map(os.path.realpath, libraries)
    ):
        wanted = f"{BACKEND_ENV}=python" if choice == "python" else f"{LIBRARY_ENV}={asked}"
        raise ImportError(f"{wanted}, but {what} serves them in this process (loaded: {loaded})")
    build = _read_build_info(what)
    path = libraries[0] if len(libraries) == 1 else None
    return _compiled_backend(path, build, f"{what} serves them (loaded: {loaded})")


def _compiled_backend(path: str | None, build: dict[str, str], reason: str) -> Backend:
    """Registers the fake kernels for a library just loaded, and Python for CUDA tensors if the
    library has no CUDA kernel."""
    global _python_library
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
    """Called by importing the package; once per process (a reload gets the same backend)."""
    global _current
    if _current is not None:
        return _current
    choice = os.environ.get(BACKEND_ENV, "auto")
    if choice not in ("auto", "compiled", "python"):
        raise ValueError(f"{BACKEND_ENV} must be auto, compiled or python (got {choice!r})")
    if _defined_already():
        _current = _adopt_defined(choice)
        return _current
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
