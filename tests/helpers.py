"""The tests' shared pieces: marks for what a machine lacks, the implementations every correctness
test runs, and (from mamba_state_ext.testing) the builders of pools, caches and indices."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import mamba_state_ext
from mamba_state_ext import fallback
from mamba_state_ext.testing import (  # noqa: F401 (the tests import them from here)
    FLOAT_PAIRS, RAW_DTYPES, assert_same_bits, fill_random, make_indices, make_intermediate,
    make_pool,
)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
COMPILED = pytest.mark.skipif(
    mamba_state_ext.backend().name != "compiled", reason="needs the compiled library"
)
# The CPU run of the CUDA grid lives in the package's own _C module, not in a CMake library.
PYTHON_MODULE = pytest.mark.skipif(
    mamba_state_ext.backend().name != "compiled" or bool(os.environ.get("MAMBA_STATE_EXT_LIBRARY")),
    reason="needs the package's compiled _C module",
)


ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, **environment) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter, from the repository root, with extra environment."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, **environment}, timeout=900)


def run_cuda_grid_on_cpu(*args, **kwargs):
    """update's CUDA grid, block by block and thread by thread, on the CPU (the compiled
    library's test hook)."""
    from mamba_state_ext import _C

    return _C._run_update_grid_on_cpu(*args, **kwargs)


def run_copy_slots_grid_on_cpu(*args, **kwargs):
    from mamba_state_ext import _C

    return _C._run_copy_slots_grid_on_cpu(*args, **kwargs)


def raw_op(*args, **kwargs):
    torch.ops.mamba_state.update(*args, **kwargs)


# The implementations every correctness test runs, by name. "grid" and "op" need the compiled
# library; "fallback" calls the pure-PyTorch implementation directly.
IMPLEMENTATIONS = {
    "op": raw_op,
    "wrapper": lambda *args, **kwargs: mamba_state_ext.update(*args, **kwargs),
    "fallback": fallback.update,
    "grid": run_cuda_grid_on_cpu,
}


def implementation_params(device_names=("cpu", "cuda")):
    """pytest params of (implementation name, device), skipping what this machine lacks."""
    params = []
    for device in device_names:
        for name in IMPLEMENTATIONS:
            if name == "grid" and device != "cpu":
                continue
            marks = []
            if device == "cuda":
                marks.append(CUDA)
            if name == "op":
                marks.append(COMPILED)
            if name == "grid":
                marks.append(PYTHON_MODULE)
            params.append(pytest.param(name, device, marks=marks, id=f"{name}-{device}"))
    return params
