"""The ways servers commit states without this library: the baselines of the tests and the
benchmark.

They take the arguments of ``mamba_state_ext.update`` (``loop_copy_slots`` those of
``copy_slots``) and write the same result; none checks its indices beyond what PyTorch indexing
does. A quantized kind is quantized with quantization.quantize, the formula written in torch.
"""

from __future__ import annotations

import torch

from .ops import TensorOrList, as_list
from .quantization import dtype_max, quantize


def _kinds(states, intermediates, state_scales, intermediate_scales, quant_max):
    """(pool, cache, pool scales, cache scales, qmax) of each kind, the scales None where a kind
    has none."""
    count = len(states)
    state_scales = state_scales or [None] * count
    intermediate_scales = intermediate_scales or [None] * count
    if quant_max is None or isinstance(quant_max, (int, float)):
        quant_max = [quant_max] * count
    return [
        (
            state,
            intermediate,
            state_scales[k],
            intermediate_scales[k],
            dtype_max(state.dtype)
            if quant_max[k] is None and state_scales[k] is not None
            else quant_max[k],
        )
        for k, (state, intermediate) in enumerate(zip(states, intermediates))
    ]


def _commit(state, values, state_scales, cache_scales, qmax, where, cache_at) -> None:
    """state[:, where] = values, quantized or with the cache's scales where the kind has scales;
    cache_at indexes the cache's scales as values was indexed out of the cache."""
    if state_scales is None:
        state[:, where] = values.to(state.dtype)
    elif cache_scales is not None:
        state[:, where] = values
        state_scales[:, where] = cache_scales[cache_at]
    else:
        groups = state_scales.shape[2:]
        state[:, where], state_scales[:, where] = quantize(
            values, state.dim() - 2, groups, state.dtype, qmax
        )


def _index_sets(dst_slots, steps, step_offset, track_slots, track_steps):
    sets = [(dst_slots, steps, step_offset)]
    if track_slots is not None:
        sets.append((track_slots, track_steps, 0))
    return sets


def loop_update(
    states: TensorOrList,
    intermediates: TensorOrList,
    dst_slots: torch.Tensor,
    steps: torch.Tensor,
    src_rows: torch.Tensor | None = None,
    *,
    step_offset: int = 0,
    track_slots: torch.Tensor | None = None,
    track_steps: torch.Tensor | None = None,
    state_scales=None,
    intermediate_scales=None,
    quant_max=None,
) -> None:
    """A Python loop over entries, reading each index with ``.item()`` (a host sync per read),
    one copy per entry and state kind: the per-request form servers started from."""
    kinds = _kinds(
        as_list(states, "states"),
        as_list(intermediates, "intermediates"),
        state_scales,
        intermediate_scales,
        quant_max,
    )
    for slots, set_steps, offset in _index_sets(
        dst_slots, steps, step_offset, track_slots, track_steps
    ):
        for n in range(slots.numel()):
            step = int(set_steps[n].item()) + offset
            slot = int(slots[n].item())
            if step < 0 or slot < 0:
                continue
            row = n if src_rows is None else int(src_rows[n].item())
            for state, intermediate, scales, cache_scales, qmax in kinds:
                values = intermediate[:, row : row + 1, step]
                at = (slice(None), slice(row, row + 1), step)
                _commit(state, values, scales, cache_scales, qmax, slice(slot, slot + 1), at)


def vectorized_update(
    states: TensorOrList,
    intermediates: TensorOrList,
    dst_slots: torch.Tensor,
    steps: torch.Tensor,
    src_rows: torch.Tensor | None = None,
    *,
    step_offset: int = 0,
    track_slots: torch.Tensor | None = None,
    track_steps: torch.Tensor | None = None,
    state_scales=None,
    intermediate_scales=None,
    quant_max=None,
) -> None:
    """Advanced indexing, per index set and state kind (SGLang PR 10586): the boolean mask syncs
    with the host, and the gather builds a temporary of every selected entry before the
    scatter; a quantized kind is quantized from that temporary, the obvious torch code."""
    kinds = _kinds(
        as_list(states, "states"),
        as_list(intermediates, "intermediates"),
        state_scales,
        intermediate_scales,
        quant_max,
    )
    rows = src_rows
    if rows is None:
        rows = torch.arange(dst_slots.numel(), device=dst_slots.device)
    for slots, set_steps, offset in _index_sets(
        dst_slots, steps, step_offset, track_slots, track_steps
    ):
        step = set_steps.to(torch.int64) + offset
        applied = (step >= 0) & (slots >= 0)
        applied_slots, applied_rows, step = slots[applied], rows[applied], step[applied]
        for state, intermediate, scales, cache_scales, qmax in kinds:
            values = intermediate[:, applied_rows, step]
            at = (slice(None), applied_rows, step)
            _commit(state, values, scales, cache_scales, qmax, applied_slots, at)


def loop_copy_slots(
    states: TensorOrList,
    src_slots: torch.Tensor,
    dst_slots: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
) -> None:
    """copy_slots one entry at a time: for each n with both slots >= 0 (and mask[n]), every
    kind's ``state[:, dst] = state[:, src]``."""
    for n in range(dst_slots.numel()):
        src, dst = int(src_slots[n]), int(dst_slots[n])
        if src < 0 or dst < 0 or (mask is not None and not bool(mask[n])):
            continue
        for state in as_list(states, "states"):
            state[:, dst].copy_(state[:, src])
