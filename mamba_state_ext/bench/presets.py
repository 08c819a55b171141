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
    groups: tuple[int, ...] | None = None  # a quantized pool's scale shape S; None: plain

    def bytes_per_layer(self) -> int:
        """One entry of one layer: read from the intermediate, written to the pool (with its
        scales, for a quantized pool)."""
        element_bytes = self.state_dtype.itemsize + self.intermediate_dtype.itemsize
        scale_bytes = 0 if self.groups is None else math.prod(self.groups) * 4
        return math.prod(self.entry) * element_bytes + scale_bytes

    def describe(self) -> str:
        dtype = str(self.state_dtype).removeprefix("torch.")
        if self.groups is None:
            return f"{self.name} {list(self.entry)} {dtype}"
        source = str(self.intermediate_dtype).removeprefix("torch.")
        return f"{self.name} {list(self.entry)} {dtype} from {source}, scales {list(self.groups)}"


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

    @property
    def quantized(self) -> bool:
        return any(kind.groups is not None for kind in self.kinds)


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


def qwen3_next_quantized(tp: int, dtype: torch.dtype) -> Preset:
    """Qwen3-Next with a quantized SSM pool, committed from a full-precision cache: float8_e4m3fn
    from float32 with SGLang #40706's scales (one per head and 32-row V tile x K), or int8 from
    bfloat16 with vLLM #52962's (one per head and head_dim row); the conv window plain."""
    heads = 32 // tp
    if dtype == torch.float8_e4m3fn:
        ssm = StateKind("ssm", (heads, 128, 128), dtype, torch.float32, (heads, 128 // 32))
        suffix = "fp8"
    else:
        ssm = StateKind("ssm", (heads, 128, 128), dtype, torch.bfloat16, (heads, 128))
        suffix = "int8"
    conv = StateKind("conv", (8192 // tp, 3), torch.bfloat16, torch.bfloat16)
    return Preset(f"qwen3-next-tp{tp}-{suffix}", 36, (ssm, conv))


PRESETS = {
    preset.name: preset
    for preset in (
        qwen3_next(4),
        qwen3_next(1),
        qwen3_next(4, sglang_layout=True),
        qwen3_next(1, sglang_layout=True),
        qwen3_next_quantized(4, torch.float8_e4m3fn),
        qwen3_next_quantized(4, torch.int8),
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
