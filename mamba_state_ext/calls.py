"""One call of each operator, its arguments in the schema's order (fallback.SCHEMAS): what the
checks, the Python fallback and the fake kernels take, as the C++ kernels take csrc/call.h's."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch


@dataclasses.dataclass(frozen=True)
class UpdateCall:
    states: Sequence[torch.Tensor]  # [L, C, *E] pools, written
    intermediates: Sequence[torch.Tensor]  # [L, R, T, *E] caches
    dst_slots: torch.Tensor
    steps: torch.Tensor
    src_rows: torch.Tensor | None = None  # None: row n
    step_offset: int = 0
    entry_status: torch.Tensor | None = None  # written
    track_slots: torch.Tensor | None = None
    track_steps: torch.Tensor | None = None
    # The quantized kinds, and each one's scales and qmax (aligned with scaled_kinds).
    scaled_kinds: Sequence[int] | None = None
    state_scales: Sequence[torch.Tensor] | None = None  # [L, C, *S] float32, written
    intermediate_scales: Sequence[torch.Tensor | None] | None = None  # [L, R, T, *S] float32
    quant_max: Sequence[float] | None = None


@dataclasses.dataclass(frozen=True)
class CopySlotsCall:
    states: Sequence[torch.Tensor]  # [L, C, *E] pools, each read and written
    src_slots: torch.Tensor
    dst_slots: torch.Tensor
    mask: torch.Tensor | None = None
    entry_status: torch.Tensor | None = None  # written
