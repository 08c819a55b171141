"""The shapes benchmarked: state kinds, presets of real models, and the batch sizes run."""

from __future__ import annotations

import dataclasses
import math

import torch

MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class StateKind:
    name: str
    entry: tuple[int, ...]
    state_dtype: torch.dtype
    intermediate_dtype: torch.dtype

    def bytes_per_layer(self) -> int:
        """One entry of one layer: read from the intermediate, written to the pool."""
        element_bytes = self.state_dtype.itemsize + self.intermediate_dtype.itemsize
        return math.prod(self.entry) * element_bytes

    def describe(self) -> str:
        return f"{self.name} {list(self.entry)} {str(self.state_dtype).removeprefix('torch.')}"


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    layers: int
    kinds: tuple[StateKind, ...]  # the SSM state first, then the conv window
    steps: int = 4  # draft tokens T
    conv_kernel: int = 4  # K: a conv window holds K - 1 steps
    # SGLang's layouts: the conv cache is the de-duplicated window (T overlapping windows over
    # one [conv_dim, T + K - 2] buffer per row), the caches are indexed by the request's position
    # in the batch (R = N + 1 rows), and the commit comes with track copies.
    sglang_layout: bool = False

    def bytes_per_entry(self) -> int:
        return self.layers * sum(kind.bytes_per_layer() for kind in self.kinds)


def qwen3_next(tp: int, *, sglang_layout: bool = False) -> Preset:
    """Qwen3-Next-80B-A3B at tensor parallelism tp: 36 linear-attention layers, SSM state
    [32/tp, 128, 128] float32, conv window [8192/tp, 3] bfloat16."""
    name = f"{'sglang-' if sglang_layout else ''}qwen3-next-tp{tp}"
    return Preset(
        name,
        36,
        (
            StateKind("ssm", (32 // tp, 128, 128), torch.float32, torch.float32),
            StateKind("conv", (8192 // tp, 3), torch.bfloat16, torch.bfloat16),
        ),
        sglang_layout=sglang_layout,
    )


PRESETS = {
    preset.name: preset
    for preset in (
        qwen3_next(4),
        qwen3_next(1),
        qwen3_next(4, sglang_layout=True),
        qwen3_next(1, sglang_layout=True),
        Preset(
            "small",
            8,
            (
                StateKind("ssm", (4, 64, 64), torch.float32, torch.float32),
                StateKind("conv", (512, 3), torch.bfloat16, torch.bfloat16),
            ),
        ),
    )
}
DEFAULT_N = {"cuda": (1, 4, 8, 32, 64, 128), "cpu": (1, 4, 8, 16)}
QUICK_N = {"cuda": (1, 8, 64), "cpu": (1, 8)}
MAX_INDEX_SETS = 16
