"""The ways servers commit states without this library: the baselines of the tests and the
benchmark.

They take the arguments of ``mamba_state_ext.update`` (``loop_copy_slots`` those of
``copy_slots``) and write the same result; none checks its indices beyond what PyTorch indexing
does.
"""

from __future__ import annotations

import torch

from .ops import TensorOrList, as_list


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
) -> None:
    """A Python loop over entries, reading each index with ``.item()`` (a host sync per read),
    one ``copy_`` per entry and state kind: the per-request form servers started from."""
    states = as_list(states, "states")
    intermediates = as_list(intermediates, "intermediates")
    for slots, set_steps, offset in _index_sets(
        dst_slots, steps, step_offset, track_slots, track_steps
    ):
        for n in range(slots.numel()):
            step = int(set_steps[n].item()) + offset
            slot = int(slots[n].item())
            if step < 0 or slot < 0:
                continue
            row = n if src_rows is None else int(src_rows[n].item())
            for state, intermediate in zip(states, intermediates):
                state[:, slot].copy_(intermediate[:, row, step])


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
) -> None:
    """Advanced indexing, per index set and state kind (SGLang PR 10586): the boolean mask syncs
    with the host, and the gather builds a temporary of every selected entry before the
    scatter."""
    states = as_list(states, "states")
    intermediates = as_list(intermediates, "intermediates")
    rows = src_rows
    if rows is None:
        rows = torch.arange(dst_slots.numel(), device=dst_slots.device)
    for slots, set_steps, offset in _index_sets(
        dst_slots, steps, step_offset, track_slots, track_steps
    ):
        step = set_steps.to(torch.int64) + offset
        applied = (step >= 0) & (slots >= 0)
        applied_slots, applied_rows, step = slots[applied], rows[applied], step[applied]
        for state, intermediate in zip(states, intermediates):
            state[:, applied_slots] = intermediate[:, applied_rows, step].to(state.dtype)


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
