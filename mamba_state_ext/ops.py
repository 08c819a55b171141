"""The friendly wrappers around ``torch.ops.mamba_state.update`` and ``.copy_slots``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import checks
from .calls import CopySlotsCall, UpdateCall

TensorOrList = torch.Tensor | Sequence[torch.Tensor]


def as_list(tensors: TensorOrList, name: str, op: str = checks.UPDATE) -> list[torch.Tensor]:
    """A state kind or a list of them, as a list. On every call's path: a plain loop, which
    costs a fraction of all() over a generator."""
    if isinstance(tensors, torch.Tensor):
        return [tensors]
    if isinstance(tensors, (list, tuple)):
        for tensor in tensors:
            if not isinstance(tensor, torch.Tensor):
                break
        else:
            return tensors if isinstance(tensors, list) else list(tensors)
    raise TypeError(f"{op}{name} must be a tensor or a list of tensors")


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
    track_slots: torch.Tensor | None = None,
    track_steps: torch.Tensor | None = None,
) -> None:
    """Commits the accepted step of every entry into the state pools, in place.

    For each entry n with ``s = steps[n] + step_offset >= 0`` and ``dst_slots[n] >= 0``, every
    state kind k and layer l: ``states[k][l, dst_slots[n]] = intermediates[k][l, src_rows[n], s]``
    converted to ``states[k].dtype`` as ``Tensor.to`` converts. A negative step or destination
    slot (``PAD_SLOT_ID = -1``) skips the entry, and its other indices are not checked.
    ``src_rows`` defaults to ``0..N-1``. With ``track_slots`` and ``track_steps``, the same call
    (one kernel launch) also copies ``intermediates[k][l, src_rows[n], track_steps[n]]`` into
    ``track_slots[n]`` where both are ``>= 0`` (the prefix-cache track copy; no step_offset).

    Args:
        states: ``[L, C, *E]`` pools (a tensor or a list, one per state kind); written in place.
        intermediates: ``[L, R, T, *E]`` caches, one per state kind; dtypes may differ among
            float32, float16 and bfloat16.
        dst_slots, steps, src_rows, track_slots, track_steps: 1-D int32 or int64 tensors of
            length N on the pools' device.
        step_offset: added to every step; -1 turns accepted lengths into step indices.
        check: validate every applied copy's indices and reject two applied copies that write
            the same slot, raising IndexError with the entry's position. It reads the indices to
            the host (a sync on CUDA); pass ``check=False`` on the hot path and in compiled graphs.
        entry_status: an optional int32 ``[N]`` tensor; the op writes 0 for every applied or
            skipped entry and the bits of the bounds a bad entry broke (1 slot, 2 row, 4 step,
            8 track slot, 16 track step), so that a caller with ``check=False`` can learn of bad
            entries later, without a sync.
    """
    states = as_list(states, "states")
    intermediates = as_list(intermediates, "intermediates")
    options = dict(
        src_rows=src_rows,
        step_offset=step_offset,
        entry_status=entry_status,
        track_slots=track_slots,
        track_steps=track_steps,
    )
    if check:
        call = UpdateCall(states, intermediates, dst_slots, steps, **options)
        checks.check_update_shapes(call)
        checks.check_entries(
            checks.UPDATE,
            checks.update_index_sets(call),
            states[0].shape[1],
            *intermediates[0].shape[1:3],
        )
    torch.ops.mamba_state.update(states, intermediates, dst_slots, steps, **options)


def copy_slots(
    states: TensorOrList,
    src_slots: torch.Tensor,
    dst_slots: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    check: bool = True,
    entry_status: torch.Tensor | None = None,
) -> None:
    """Copies slots inside each pool, in place: for each n with ``src_slots[n] >= 0``,
    ``dst_slots[n] >= 0`` and (if given) ``mask[n]``, every state kind k and layer l:
    ``states[k][l, dst_slots[n]] = states[k][l, src_slots[n]]``. One kernel launch on CUDA for
    every kind and layer: the prefix-cache track copy, or the fork of a cached state into a new
    request's slot.

    Args:
        states: ``[L, C, *E]`` pools (a tensor or a list); each is read and written.
        src_slots, dst_slots: 1-D int32 or int64 tensors of length N; negative skips.
        mask: an optional bool ``[N]``; entries where it is false are skipped.
        check: validate every applied copy's slots, and reject a slot written twice or both
            read and written (otherwise the result is unspecified), raising IndexError. A host
            sync on CUDA; pass ``check=False`` on the hot path.
        entry_status: an optional int32 ``[N]``: 0 for applied and skipped entries, else the
            bits of the slot that was out of range (1 destination, 2 source).
    """
    states = as_list(states, "states", checks.COPY_SLOTS)
    if check:
        call = CopySlotsCall(states, src_slots, dst_slots, mask=mask, entry_status=entry_status)
        checks.check_copy_slots_shapes(call)
        num_slots = states[0].shape[1]
        checks.check_entries(
            checks.COPY_SLOTS, checks.copy_slots_index_sets(call), num_slots, num_slots, 1
        )
    torch.ops.mamba_state.copy_slots(
        states, src_slots, dst_slots, mask=mask, entry_status=entry_status
    )
