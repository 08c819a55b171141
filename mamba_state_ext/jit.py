"""Build the operator library in the running process (a notebook): ``mamba_state_ext.jit.load()``.

It compiles the package's own sources (csrc/ beside this file, in a checkout and in an installed
wheel or sdist alike), with the same flags and definitions (build_config.py) as ``pip install``
and CMake, through ``torch.utils.cpp_extension.load``, which needs ninja (``pip install ninja``)
and links the CUDA runtime of the running torch (the library is for this process, not for
shipping). It takes the place of the Python fallback: in a process where a compiled library
already serves the operator, it says so and loads nothing, since an operator namespace can be
defined only once per process.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from . import _loader, build_config

# The built library's name, as the CMake build names its own (libmamba_state_ops.so there).
JIT_LIBRARY_NAME = "mamba_state_ops"


def _arch_flags(cuda_home: str) -> list[str]:
    # With a GPU visible and no TORCH_CUDA_ARCH_LIST, torch builds for that GPU alone (the fastest
    # build); otherwise the list, or the release architectures.
    if torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return []
    return build_config.cuda_arch_flags(cuda_home)


def default_build_directory(with_cuda: bool) -> Path:
    """$TORCH_EXTENSIONS_DIR (as every torch extension honours it), else torch's extension build
    root; one directory below it per torch version and CUDA choice."""
    import torch.utils.cpp_extension as cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    flavour = "cuda" if with_cuda else "cpu"
    return Path(root) / f"{JIT_LIBRARY_NAME}-torch{torch.__version__}-{flavour}"


def load(
    *,
    with_cuda: bool | None = None,
    verbose: bool = False,
    build_directory: str | os.PathLike | None = None,
) -> str:
    """Compiles and loads the operator library; returns its path.

    Args:
        with_cuda: build the CUDA kernel (None: when torch is a CUDA build and a toolkit is found).
        verbose: show the compiler's output.
        build_directory: where to build (default: under $TORCH_EXTENSIONS_DIR, else torch's
            extension build root; one directory per torch version and CUDA choice, so a second
            call reuses the build).
    """
    backend = _loader.current()
    if backend.name == "compiled":
        print(
            f"mamba_state_ext.jit: {backend.library} already serves mamba_state::update in this "
            "process (an operator namespace is defined once per process); nothing loaded"
        )
        return backend.library
    if not build_config.sources(with_cuda=False):
        raise FileNotFoundError(
            f"mamba_state_ext.jit: no sources in {build_config.SOURCE_DIR} (this install of "
            "mamba_state_ext lacks its package data; reinstall it)"
        )
    if with_cuda is not False:  # None: auto (or MAMBA_STATE_EXT_CUDA); True: required
        with_cuda = build_config.configure_cuda(torch.version.cuda, "1" if with_cuda else None)
    import torch.utils.cpp_extension as cpp_extension

    # It reads CUDA_HOME once, at its first import, and may have guessed it before we set it.
    if with_cuda and os.environ["CUDA_HOME"] != cpp_extension.CUDA_HOME:
        cpp_extension.CUDA_HOME = os.environ["CUDA_HOME"]
    if build_directory is None:
        build_directory = default_build_directory(with_cuda)
    Path(build_directory).mkdir(parents=True, exist_ok=True)
    sources = build_config.sources(with_cuda=with_cuda)
    cuda_flags = []
    if with_cuda:
        cuda_flags = build_config.nvcc_flags() + _arch_flags(os.environ["CUDA_HOME"])
    path = str(Path(build_directory) / f"{JIT_LIBRARY_NAME}.so")

    def build_and_load() -> str:
        cpp_extension.load(
            name=JIT_LIBRARY_NAME,
            sources=sources,
            build_directory=str(build_directory),
            extra_cflags=build_config.cxx_flags(with_cuda),
            extra_cuda_cflags=cuda_flags,
            with_cuda=with_cuda,
            verbose=verbose,
            is_python_module=False,
        )
        return path

    backend = _loader.replace_fallback(build_and_load, "built by mamba_state_ext.jit.load()")
    print(
        f"mamba_state_ext.jit: built and loaded {path} "
        f"({'with' if with_cuda else 'without'} CUDA) in place of the Python fallback"
    )
    return path
