"""The friendly wrappers around ``torch.ops.mamba_state.update`` and ``.copy_slots``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from . import checks
from .calls import CopySlotsCall, UpdateCall
from .quantization import QUANTIZED_DTYPES, dtype_max

TensorOrList = torch.Tensor | Sequence[torch.Tensor]


def as_list(tensors: TensorOrList, name: str, op: str = checks.UPDATE) -> list[torch.Tensor]:
    """A state kind or a list of them, as a list. On every call's path: a list is tried first
    (isinstance(a list, torch.Tensor) costs more than isinstance(a list, list)), with a plain loop
    (a fraction of all() over a generator)."""
    if isinstance(tensors, (list, tuple)):
        for tensor in tensors:
            if not isinstance(tensor, torch.Tensor):
                break
        else:
            return tensors if isinstance(tensors, list) else list(tensors)
    elif isinstance(tensors, torch.Tensor):
        return [tensors]
    raise TypeError(f"{op}{name} must be a tensor or a list of tensors")


def _optional_tensors(items, name: str, op: str = checks.UPDATE) -> list:
    if not isinstance(items, (list, tuple)) or not all(
        item is None or isinstance(item, torch.Tensor) for item in items
    ):
        raise TypeError(f"{op}{name} must be None or a list of tensors and None")
    return list(items)


def _as_quant_max(value: int | float) -> float:
    """A quant_max as a float: an int too large for one is infinite, which the checks refuse."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def raw_scales(states, intermediates, state_scales, intermediate_scales, quant_max) -> dict:
    """The wrapper's scale arguments (lists aligned with the kinds) as the operator takes them:
    scaled_kinds, and state_scales, intermediate_scales and quant_max aligned with it."""
    op = checks.UPDATE
    state_scales = _optional_tensors(
        [None] * len(states) if state_scales is None else state_scales, "state_scales"
    )
    if len(state_scales) != len(states):
        raise ValueError(
            f"{op}state_scales has {len(state_scales)} items but states has {len(states)}"
        )
    scaled = [k for k, scales in enumerate(state_scales) if scales is not None]
    cache_scales = None
    if intermediate_scales is not None:
        given = _optional_tensors(intermediate_scales, "intermediate_scales")
        if len(given) != len(intermediates):
            raise ValueError(
                f"{op}intermediate_scales has {len(given)} items but intermediates has "
                f"{len(intermediates)}"
            )
        for k, scales in enumerate(given):
            if scales is not None and state_scales[k] is None:
                raise ValueError(
                    f"{op}intermediate_scales[{k}] is given but state_scales[{k}] is None: a "
                    "cache with scales goes into a pool with scales"
                )
        cache_scales = [given[k] for k in scaled]
    qmax = None
    if isinstance(quant_max, (int, float)) and not isinstance(quant_max, bool):
        qmax = [_as_quant_max(quant_max)] * len(scaled)
    elif quant_max is not None:
        if not isinstance(quant_max, (list, tuple)) or not all(
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
            for value in quant_max
        ):
            raise TypeError(f"{op}quant_max must be None, a number, or a list of numbers and None")
        if len(quant_max) != len(states):
            raise ValueError(
                f"{op}quant_max has {len(quant_max)} items but states has {len(states)}"
            )
        for k, value in enumerate(quant_max):
            if value is not None and state_scales[k] is None:
                raise ValueError(
                    f"{op}quant_max[{k}] is given but state_scales[{k}] is None: only a pool with "
                    "scales takes a quant_max"
                )
        if any(value is not None for value in quant_max):
            # A pool that cannot take scales gets no default: the checks name it first.
            qmax = [
                _as_quant_max(quant_max[k])
                if quant_max[k] is not None
                else dtype_max(states[k].dtype)
                if states[k].dtype in QUANTIZED_DTYPES
                else math.nan
                for k in scaled
            ]
    raw = dict(scaled_kinds=scaled, state_scales=[state_scales[k] for k in scaled])
    if cache_scales is not None:
        raw["intermediate_scales"] = cache_scales
    if qmax is not None:
        raw["quant_max"] = qmax
    return raw


def update_options(
    states,
    intermediates,
    *,
    src_rows=None,
    step_offset=0,
    entry_status=None,
    track_slots=None,
    track_steps=None,
    state_scales=None,
    intermediate_scales=None,
    quant_max=None,
) -> dict:
    """The operator's keyword arguments for an update call, only those not at the schema's
    default: torch parses every keyword a call passes, about 0.3 us each on the CPU."""
    options = {}
    if src_rows is not None:
        options["src_rows"] = src_rows
    if step_offset != 0:
        options["step_offset"] = step_offset
    if entry_status is not None:
        options["entry_status"] = entry_status
    if track_slots is not None:
        options["track_slots"] = track_slots
    if track_steps is not None:
        options["track_steps"] = track_steps
    if state_scales is not None or intermediate_scales is not None or quant_max is not None:
        options.update(
            raw_scales(states, intermediates, state_scales, intermediate_scales, quant_max)
        )
    return options


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
    state_scales: Sequence[torch.Tensor | None] | None = None,
    intermediate_scales: Sequence[torch.Tensor | None] | None = None,
    quant_max: float | Sequence[float | None] | None = None,
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
        state_scales: quantized pools (docs/contract.md): None, or a list as long as
            ``states`` whose item k is None (kind k is plain) or a float32 ``[L, C, *S_k]``: kind
            k's pool is int8, float8_e4m3fn or float8_e5m2 with one scale per group of its state
            (S_k's dims divide the leading dims of E_k). Written with the values.
        intermediate_scales: None, or a list as long as ``intermediates`` whose item k is None
            (kind k's cache is float32, float16 or bfloat16 and is quantized on commit, group by
            group) or a float32 ``[L, R, T, *S_k]`` (the cache is quantized already, in the
            pool's dtype, and is copied as it is, scales and all).
        quant_max: the qmax of the quantized kinds: None (each pool dtype's largest value: 448
            for float8_e4m3fn, 57344 for float8_e5m2, 127 for int8), one number for every
            quantized kind, or a list aligned with ``states`` (None: that dtype's largest).
    """
    states = as_list(states, "states")
    intermediates = as_list(intermediates, "intermediates")
    options = update_options(
        states,
        intermediates,
        src_rows=src_rows,
        step_offset=step_offset,
        entry_status=entry_status,
        track_slots=track_slots,
        track_steps=track_steps,
        state_scales=state_scales,
        intermediate_scales=intermediate_scales,
        quant_max=quant_max,
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


def copy_slots_options(mask, entry_status) -> dict:
    """copy_slots' keyword arguments, only those given (as update_options)."""
    options = {}
    if mask is not None:
        options["mask"] = mask
    if entry_status is not None:
        options["entry_status"] = entry_status
    return options


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
        states, src_slots, dst_slots, **copy_slots_options(mask, entry_status)
    )
