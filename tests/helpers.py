"""The tests' shared pieces: marks for what a machine lacks, the implementations every correctness
test runs, and (from builders.py) the builders of pools, caches and indices."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import grid_library
import pytest
import torch
from builders import (  # noqa: F401 (the tests import them from here)
    FLOAT_PAIRS,
    FLOATS,
    RAW_DTYPES,
    assert_same_bits,
    fill_finite,
    fill_random,
    make_indices,
    make_intermediate,
    make_pool,
)

import mamba_state_ext
from mamba_state_ext import fallback

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
COMPILED = pytest.mark.skipif(
    mamba_state_ext.backend().name != "compiled", reason="needs the compiled library"
)
# The compiled CUDA kernel serving CUDA tensors: no host sync, capturable in a CUDA graph.
COMPILED_CUDA = pytest.mark.skipif(
    mamba_state_ext.backend().cuda != "compiled", reason="needs the compiled CUDA kernel"
)


ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def run_python(code: str, **environment) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter, from tests/ (so that it imports the installed package,
    not the source tree beside it), with extra environment."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=TESTS,
        text=True,
        capture_output=True,
        env={**os.environ, **environment},
        timeout=900,
    )


def seed_of(*parameters) -> int:
    """A test's seed from its parameters, the same in every process (``hash`` of a string is
    not: Python randomizes it per process)."""
    return zlib.crc32(repr(parameters).encode())


# update's and copy_slots' CUDA grid, block by block and thread by thread, on the CPU.
run_cuda_grid_on_cpu = grid_library.run_update
run_copy_slots_grid_on_cpu = grid_library.run_copy_slots


def raw_op(*args, **kwargs):
    torch.ops.mamba_state.update(*args, **kwargs)


# The implementations every correctness test runs, by name. "op" needs the compiled library;
# "fallback" calls the pure-PyTorch implementation directly; "grid" is the test library.
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
            params.append(pytest.param(name, device, marks=marks, id=f"{name}-{device}"))
    return params
