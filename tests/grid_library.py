"""The tests' CPU run of the CUDA kernel's grid: a test-only operator library
(tests/grid/grid_on_cpu.cpp with the host code of mamba_state_ext/csrc/), built once per torch with
torch.utils.cpp_extension.load under build/test-grid/, whichever library serves mamba_state."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import torch

from mamba_state_ext import build_config

ROOT = Path(__file__).resolve().parent.parent
CSRC = build_config.SOURCE_DIR
# The host code the grid needs: the checks and the plan, the grid's launch plan, and the run.
SOURCES = [
    *(CSRC / name for name in ("checks.cpp", "memory_overlap.cpp", "plan.cpp", "registration.cpp")),
    CSRC / "tensor_meta.cpp",
    CSRC / "grid" / "launch_plan.cpp",
    ROOT / "tests" / "grid" / "grid_on_cpu.cpp",
]


@functools.cache
def load():
    """torch.ops.mamba_state_grid, built on first use (about a minute)."""
    cuda_home = build_config.find_cuda_home()  # no CUDA here; saves torch's guess and warning
    if cuda_home and not os.environ.get("CUDA_HOME"):
        os.environ["CUDA_HOME"] = cuda_home
    import torch.utils.cpp_extension as cpp_extension

    directory = ROOT / "build" / "test-grid" / f"torch-{torch.__version__}"
    directory.mkdir(parents=True, exist_ok=True)
    cpp_extension.load(
        name="mamba_state_grid",
        sources=[str(source) for source in SOURCES],
        extra_cflags=build_config.cxx_flags(with_cuda=False),
        extra_include_paths=[str(CSRC)],
        build_directory=str(directory),
        is_python_module=False,
        verbose=bool(os.environ.get("MAMBA_STATE_EXT_VERBOSE_BUILD")),
    )
    return torch.ops.mamba_state_grid


def run_update(*args, max_blocks: int = 7, **kwargs) -> list[dict]:
    """update through the CUDA grid run on the CPU, with a grid of at most max_blocks blocks;
    returns each launch's block count and each state kind's path, unit, tile and block counts."""
    grid = load()
    grid.set_max_blocks(max_blocks)
    grid.update(*args, **kwargs)
    return json.loads(grid.last_launches())


def run_copy_slots(*args, max_blocks: int = 7, **kwargs) -> list[dict]:
    grid = load()
    grid.set_max_blocks(max_blocks)
    grid.copy_slots(*args, **kwargs)
    return json.loads(grid.last_launches())
