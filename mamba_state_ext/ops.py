"""The friendly wrapper around ``torch.ops.mamba_state.update``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import checks

TensorOrList = torch.Tensor | Sequence[torch.Tensor]


def _as_list(tensors: TensorOrList, name: str) -> list[torch.Tensor]:
    if isinstance(tensors, torch.Tensor):
        return [tensors]
    if isinstance(tensors, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in tensors):
        return list(tensors)
    raise TypeError(f"{checks.OP}{name} must be a tensor or a list of tensors")


def update(
    states: TensorOrList,
    intermediates: TensorOrList,
    dst_slots: torch.Tensor,
    steps: torch.Tensor,
    src_rows: torch.Tensor | None = None,
    *,
    step_offset: int = 0,
    check: bool = True,
    entry_status: torch.Tensor | None = None,
) -> None:
    """Commits the accepted step of every entry into the state pools, in place.

    For each entry n with ``s = steps[n] + step_offset >= 0``, every state kind k and layer l:
    ``states[k][l, dst_slots[n]] = intermediates[k][l, src_rows[n], s]`` converted to
    ``states[k].dtype`` as ``Tensor.to`` converts. ``s < 0`` skips the entry (its indices are
    not checked). ``src_rows`` defaults to ``0..N-1``.

    Args:
        states: ``[L, C, *E]`` pools (a tensor or a list, one per state kind); written in place.
        intermediates: ``[L, R, T, *E]`` caches, one per state kind; dtypes may differ among
            float32, float16 and bfloat16.
        dst_slots, steps, src_rows: 1-D int32 or int64 tensors of length N on the pools' device.
        step_offset: added to every step; -1 turns accepted lengths into step indices.
        check: validate every applied entry's indices and reject two applied entries that write
            the same slot, raising IndexError with the entry's position. It reads the indices to
            the host (a sync on CUDA); pass ``check=False`` on the hot path and in compiled graphs.
        entry_status: an optional int32 ``[N]`` tensor; the op writes 0 for every applied or
            skipped entry and the bits of the bounds a bad entry broke (1 slot, 2 row, 4 step),
            so that a caller with ``check=False`` can learn of bad entries later, without a sync.
    """
    states = _as_list(states, "states")
    intermediates = _as_list(intermediates, "intermediates")
    if check:
        checks.check_update_args(states, intermediates, dst_slots, steps, src_rows, entry_status)
        checks.check_entries(states, intermediates, dst_slots, steps, src_rows, step_offset)
    torch.ops.mamba_state.update(
        states, intermediates, dst_slots, steps, src_rows, step_offset, entry_status
    )
