"""The ways servers commit states today: the baselines of the tests and the benchmark.

Both take the arguments of ``mamba_state_ext.update`` and write the same result; neither checks
its indices beyond what PyTorch indexing does.
"""

from __future__ import annotations

import torch

from .ops import TensorOrList, _as_list


def loop_update(
    states: TensorOrList,
    intermediates: TensorOrList,
    dst_slots: torch.Tensor,
    steps: torch.Tensor,
    src_rows: torch.Tensor | None = None,
    *,
    step_offset: int = 0,
) -> None:
    """SGLang's first form: a Python loop over entries, reading each index with ``.item()``
    (a host sync per read), one ``copy_`` per entry and state kind."""
    states = _as_list(states, "states")
    intermediates = _as_list(intermediates, "intermediates")
    for n in range(dst_slots.numel()):
        step = int(steps[n].item()) + step_offset
        if step < 0:
            continue
        slot = int(dst_slots[n].item())
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
) -> None:
    """The seed's form (SGLang PR 10586): advanced indexing. The boolean mask syncs with the
    host, and the gather builds a temporary of every selected entry before the scatter."""
    states = _as_list(states, "states")
    intermediates = _as_list(intermediates, "intermediates")
    step = steps.to(torch.int64) + step_offset
    applied = step >= 0
    rows = src_rows
    if rows is None:
        rows = torch.arange(dst_slots.numel(), device=dst_slots.device)
    slots, rows, step = dst_slots[applied], rows[applied], step[applied]
    for state, intermediate in zip(states, intermediates):
        state[:, slots] = intermediate[:, rows, step].to(state.dtype)
