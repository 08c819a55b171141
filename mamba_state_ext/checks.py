"""The argument checks and index rules of ``mamba_state::update`` and ``mamba_state::copy_slots``.

Twin of ``csrc/checks.cpp`` (argument checks, messages; memory sharing is ``overlap.py``) and of
``resolve_entry`` in ``csrc/index_rules.h`` (index rules): the same checks in the same order with
the same words. The Python fallback, the fake kernels and the wrappers' ``check=True`` use them,
and the tests hold both implementations to one table of errors (``tests/error_cases.py``). Every
bad argument is a ValueError, whichever implementation finds it (the compiled library's errors
reach Python as ValueError: csrc/errors.h); an index out of range is an IndexError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from .calls import CopySlotsCall, UpdateCall
from .constants import (
    MAX_STATE_DIMS,
    ROW_OUT_OF_RANGE,
    SLOT_OUT_OF_RANGE,
    STEP_OUT_OF_RANGE,
    TRACK_SLOT_OUT_OF_RANGE,
    TRACK_STEP_OUT_OF_RANGE,
)
from .overlap import byte_range, may_overlap_itself, ranges_meet, share_bytes
from .quantization import QUANTIZED_DTYPES, as_float32, dtype_max, groups_divide

UPDATE = "mamba_state.update: "
COPY_SLOTS = "mamba_state.copy_slots: "
CONVERTED_FLOATS = (torch.float32, torch.float16, torch.bfloat16)


def _check_pool_rank(op: str, state: torch.Tensor, k: int) -> None:
    if state.dim() < 2:
        raise ValueError(
            f"{op}states[{k}] must be [layers, slots, *state] (got shape {list(state.shape)})"
        )
    if state.dim() - 2 > MAX_STATE_DIMS:
        raise ValueError(
            f"{op}states[{k}] has {state.dim() - 2} state dims; "
            f"at most {MAX_STATE_DIMS} are supported"
        )


def _check_same_slots(op: str, states: Sequence[torch.Tensor], k: int) -> None:
    if states[k].shape[1] != states[0].shape[1]:
        raise ValueError(
            f"{op}states[{k}] has {states[k].shape[1]} slots but states[0] has "
            f"{states[0].shape[1]}: every pool must have the same slots"
        )


def _check_index_tensor(op: str, index: torch.Tensor, name: str, num_entries: int) -> None:
    if index.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{op}{name} must be int32 or int64 (got {index.dtype})")
    if index.dim() != 1:
        raise ValueError(f"{op}{name} must be 1-D (got shape {list(index.shape)})")
    if index.numel() != num_entries:
        raise ValueError(f"{op}{name} has {index.numel()} entries but dst_slots has {num_entries}")


def _check_entry_status(op: str, entry_status: torch.Tensor | None, num_entries: int) -> None:
    if entry_status is None:
        return
    if entry_status.dtype != torch.int32:
        raise ValueError(f"{op}entry_status must be int32 (got {entry_status.dtype})")
    if entry_status.dim() != 1 or entry_status.numel() != num_entries:
        raise ValueError(
            f"{op}entry_status must have shape [{num_entries}], one per entry "
            f"(got {list(entry_status.shape)})"
        )


def update_arguments(call: UpdateCall):
    """update's tensor arguments as (name, tensor, written), destinations first, in the order
    the messages name them. A scale tensor is named by the kind it belongs to: state_scales[k]
    is the scales of states[k], whatever its place in the operator's list."""
    arguments = [(f"states[{k}]", state, True) for k, state in enumerate(call.states)]
    quantized = quantized_kinds(call)
    arguments += [(f"state_scales[{k}]", kind.state_scales, True) for k, kind in quantized.items()]
    if call.entry_status is not None:
        arguments.append(("entry_status", call.entry_status, True))
    arguments += [(f"intermediates[{k}]", t, False) for k, t in enumerate(call.intermediates)]
    arguments += [
        (f"intermediate_scales[{k}]", kind.intermediate_scales, False)
        for k, kind in quantized.items()
        if kind.intermediate_scales is not None
    ]
    arguments += [("dst_slots", call.dst_slots, False), ("steps", call.steps, False)]
    optional = (
        ("src_rows", call.src_rows),
        ("track_slots", call.track_slots),
        ("track_steps", call.track_steps),
    )
    arguments += [(name, tensor, False) for name, tensor in optional if tensor is not None]
    return arguments


def copy_slots_arguments(call: CopySlotsCall):
    """copy_slots' tensor arguments: each pool is read and written."""
    arguments = [(f"states[{k}]", state, True) for k, state in enumerate(call.states)]
    if call.entry_status is not None:
        arguments.append(("entry_status", call.entry_status, True))
    arguments += [("src_slots", call.src_slots, False), ("dst_slots", call.dst_slots, False)]
    if call.mask is not None:
        arguments.append(("mask", call.mask, False))
    return arguments


def _check_devices(op: str, arguments) -> None:
    device = arguments[0][1].device  # states[0]
    for name, tensor, _ in arguments:
        if tensor.device != device:
            raise ValueError(f"{op}{name} is on {tensor.device} but states[0] is on {device}")


def check_no_overlap(op: str, arguments) -> None:
    """No destination may share a byte with itself or with any other argument. Most arguments
    are allocations of their own: their byte ranges, compared first, settle most pairs."""
    ranges = [byte_range(tensor) for _, tensor, _ in arguments]
    for i, (name, tensor, written) in enumerate(arguments):
        if not written:
            continue
        if may_overlap_itself(tensor):
            raise ValueError(
                f"{op}{name} has elements that share memory (an expanded or overlapping view): "
                "every destination element needs memory of its own"
            )
        for j, (other_name, other, _) in enumerate(arguments):
            if j != i and ranges_meet(ranges[i], ranges[j]) and share_bytes(tensor, other):
                raise ValueError(
                    f"{op}{name} shares memory with {other_name}: "
                    "a destination must not overlap any other argument"
                )


@dataclasses.dataclass(frozen=True)
class QuantizedKind:
    """A kind with scales: its pool's scales, its cache's (None: quantized on commit) and its
    qmax (None: the pool dtype's largest value)."""

    state_scales: torch.Tensor
    intermediate_scales: torch.Tensor | None
    quant_max: float | None

    def qmax(self, dtype: torch.dtype) -> float:
        return dtype_max(dtype) if self.quant_max is None else self.quant_max


def quantized_kinds(call: UpdateCall) -> dict[int, QuantizedKind]:
    """The kinds with scales, by kind, after the lists' own checks: scaled_kinds increasing kinds
    of states, and each list as long as it."""
    op = UPDATE
    kinds = list(call.scaled_kinds or [])
    if any(not 0 <= k < len(call.states) for k in kinds) or kinds != sorted(set(kinds)):
        raise ValueError(
            f"{op}scaled_kinds must be increasing kinds of states, in [0, {len(call.states)}) "
            f"(got {kinds})"
        )
    state_scales = list(call.state_scales or [])
    if len(state_scales) != len(kinds):
        raise ValueError(
            f"{op}state_scales has {len(state_scales)} tensors but scaled_kinds has {len(kinds)}"
        )
    intermediate_scales = [None] * len(kinds)
    if call.intermediate_scales is not None:
        intermediate_scales = list(call.intermediate_scales)
        if len(intermediate_scales) != len(kinds):
            raise ValueError(
                f"{op}intermediate_scales has {len(intermediate_scales)} items but scaled_kinds "
                f"has {len(kinds)}"
            )
    quant_max = [None] * len(kinds)
    if call.quant_max is not None:
        quant_max = list(call.quant_max)
        if len(quant_max) != len(kinds):
            raise ValueError(
                f"{op}quant_max has {len(quant_max)} values but scaled_kinds has {len(kinds)}"
            )
    return {
        k: QuantizedKind(*scales)
        for k, scales in zip(kinds, zip(state_scales, intermediate_scales, quant_max))
    }


def _check_quantized_kind(op, k, state, intermediate, kind: QuantizedKind) -> None:
    """A kind with scales: its pool's dtype, its cache's, and both scale tensors' shapes."""
    if state.dtype not in QUANTIZED_DTYPES:
        raise ValueError(
            f"{op}states[{k}] is {state.dtype}: only an int8, float8_e4m3fn or float8_e5m2 "
            "pool takes scales"
        )
    if kind.intermediate_scales is not None and intermediate.dtype != state.dtype:
        raise ValueError(
            f"{op}intermediates[{k}] is {intermediate.dtype} but states[{k}] is {state.dtype}: "
            "a cache with scales is copied as it is, in the pool's dtype"
        )
    if kind.intermediate_scales is None and intermediate.dtype not in CONVERTED_FLOATS:
        raise ValueError(
            f"{op}intermediates[{k}] is {intermediate.dtype}: a quantized pool is fed from "
            "float32, float16 or bfloat16, or from a cache of its own dtype with "
            "intermediate_scales"
        )
    scales, state_shape = kind.state_scales, list(state.shape[2:])
    if scales.dtype != torch.float32:
        raise ValueError(f"{op}state_scales[{k}] must be float32 (got {scales.dtype})")
    if not 2 <= scales.dim() <= 2 + len(state_shape):
        raise ValueError(
            f"{op}state_scales[{k}] must be [layers, slots, *groups] with no more group dims "
            f"than states[{k}] has state dims ({len(state_shape)}) (got shape "
            f"{list(scales.shape)})"
        )
    if scales.shape[:2] != state.shape[:2]:
        raise ValueError(
            f"{op}state_scales[{k}] has {scales.shape[0]} layers and {scales.shape[1]} slots "
            f"but states[{k}] has {state.shape[0]} and {state.shape[1]}"
        )
    for d, (groups, size) in enumerate(zip(scales.shape[2:], state_shape)):
        if not groups_divide(groups, size):
            raise ValueError(
                f"{op}state_scales[{k}] has {groups} groups along state dim {d}, which does "
                f"not divide its {size}"
            )
    cache_scales = kind.intermediate_scales
    if cache_scales is not None:
        if cache_scales.dtype != torch.float32:
            raise ValueError(
                f"{op}intermediate_scales[{k}] must be float32 (got {cache_scales.dtype})"
            )
        expected = [*intermediate.shape[:3], *scales.shape[2:]]
        if list(cache_scales.shape) != expected:
            raise ValueError(
                f"{op}intermediate_scales[{k}] must be [layers, rows, steps, *groups] with the "
                f"groups of state_scales[{k}]: {expected} (got {list(cache_scales.shape)})"
            )
    largest = dtype_max(state.dtype)
    qmax = kind.qmax(state.dtype)
    if not (0 < qmax <= largest and as_float32(qmax) > 0):
        raise ValueError(
            f"{op}quant_max of states[{k}] must be positive as a float32 and at most "
            f"{state.dtype}'s largest value {largest:g} (got {qmax:g})"
        )


def check_update_shapes(call: UpdateCall) -> None:
    """Shapes, dtypes and devices; reads no data, so it is also the fake kernel."""
    op = UPDATE
    states, intermediates = call.states, call.intermediates
    if len(states) == 0:
        raise ValueError(f"{op}states is empty: pass at least one state pool")
    if len(states) != len(intermediates):
        raise ValueError(
            f"{op}states has {len(states)} tensors but intermediates has {len(intermediates)}"
        )
    quantized = quantized_kinds(call)
    for k, (state, intermediate) in enumerate(zip(states, intermediates)):
        _check_pool_rank(op, state, k)
        if intermediate.dim() < 3:
            raise ValueError(
                f"{op}intermediates[{k}] must be [layers, rows, steps, *state] "
                f"(got shape {list(intermediate.shape)})"
            )
        if intermediate.shape[0] != state.shape[0]:
            raise ValueError(
                f"{op}intermediates[{k}] has {intermediate.shape[0]} layers "
                f"but states[{k}] has {state.shape[0]}"
            )
        if intermediate.shape[3:] != state.shape[2:]:
            raise ValueError(
                f"{op}intermediates[{k}] has state shape {list(intermediate.shape[3:])} "
                f"but states[{k}] has {list(state.shape[2:])}"
            )
        _check_same_slots(op, states, k)
        if intermediate.shape[1:3] != intermediates[0].shape[1:3]:
            raise ValueError(
                f"{op}intermediates[{k}] has {intermediate.shape[1]} rows and "
                f"{intermediate.shape[2]} steps but intermediates[0] has "
                f"{intermediates[0].shape[1]} rows and {intermediates[0].shape[2]} steps"
            )
        if k in quantized:
            _check_quantized_kind(op, k, state, intermediate, quantized[k])
        elif state.dtype != intermediate.dtype and not (
            state.dtype in CONVERTED_FLOATS and intermediate.dtype in CONVERTED_FLOATS
        ):
            raise ValueError(
                f"{op}states[{k}] is {state.dtype} but intermediates[{k}] is "
                f"{intermediate.dtype}: only float32, float16 and bfloat16 convert to one "
                "another; other dtypes must match, unless the pool has scales (state_scales)"
            )
    num_entries = call.dst_slots.numel()
    _check_index_tensor(op, call.dst_slots, "dst_slots", num_entries)
    _check_index_tensor(op, call.steps, "steps", num_entries)
    if call.src_rows is not None:
        _check_index_tensor(op, call.src_rows, "src_rows", num_entries)
    if (call.track_slots is None) != (call.track_steps is None):
        raise ValueError(f"{op}pass track_slots and track_steps together, or neither")
    if call.track_slots is not None:
        _check_index_tensor(op, call.track_slots, "track_slots", num_entries)
        _check_index_tensor(op, call.track_steps, "track_steps", num_entries)
    _check_entry_status(op, call.entry_status, num_entries)
    _check_devices(op, update_arguments(call))


def check_copy_slots_shapes(call: CopySlotsCall) -> None:
    """Shapes, dtypes and devices; reads no data, so it is also the fake kernel."""
    op = COPY_SLOTS
    if len(call.states) == 0:
        raise ValueError(f"{op}states is empty: pass at least one state pool")
    for k, state in enumerate(call.states):
        _check_pool_rank(op, state, k)
        _check_same_slots(op, call.states, k)
    num_entries = call.dst_slots.numel()
    _check_index_tensor(op, call.dst_slots, "dst_slots", num_entries)
    _check_index_tensor(op, call.src_slots, "src_slots", num_entries)
    if call.mask is not None:
        if call.mask.dtype != torch.bool:
            raise ValueError(f"{op}mask must be bool (got {call.mask.dtype})")
        if call.mask.dim() != 1 or call.mask.numel() != num_entries:
            raise ValueError(
                f"{op}mask must have shape [{num_entries}], one per entry "
                f"(got {list(call.mask.shape)})"
            )
    _check_entry_status(op, call.entry_status, num_entries)
    _check_devices(op, copy_slots_arguments(call))


def check_update(call: UpdateCall) -> None:
    """Everything the compiled op checks before it reads an index: shapes, dtypes, devices,
    memory sharing."""
    check_update_shapes(call)
    check_no_overlap(UPDATE, update_arguments(call))


def check_copy_slots(call: CopySlotsCall) -> None:
    check_copy_slots_shapes(call)
    check_no_overlap(COPY_SLOTS, copy_slots_arguments(call))


def fake_update(*args, **kwargs) -> None:
    """The fake (meta) kernel of update, for both backends: the shape checks, nothing else."""
    check_update_shapes(UpdateCall(*args, **kwargs))


def fake_copy_slots(*args, **kwargs) -> None:
    """The fake (meta) kernel of copy_slots."""
    check_copy_slots_shapes(CopySlotsCall(*args, **kwargs))


@dataclasses.dataclass(frozen=True)
class IndexSet:
    """One set of N copies (csrc/index_rules.h: IndexSet). ``steps`` None: step 0; ``src_rows``
    None: row n; ``mask`` None: every entry."""

    dst_slots: torch.Tensor
    steps: torch.Tensor | None
    src_rows: torch.Tensor | None
    mask: torch.Tensor | None = None
    step_offset: int = 0
    negative_row_skips: bool = False
    slot_bit: int = SLOT_OUT_OF_RANGE
    row_bit: int = ROW_OUT_OF_RANGE
    step_bit: int = STEP_OUT_OF_RANGE


def update_index_sets(call: UpdateCall) -> list[IndexSet]:
    """The commit and, with track_slots, the track copies."""
    sets = [IndexSet(call.dst_slots, call.steps, call.src_rows, step_offset=call.step_offset)]
    if call.track_slots is not None:
        sets.append(
            IndexSet(
                call.track_slots,
                call.track_steps,
                call.src_rows,
                slot_bit=TRACK_SLOT_OUT_OF_RANGE,
                step_bit=TRACK_STEP_OUT_OF_RANGE,
            )
        )
    return sets


def copy_slots_index_sets(call: CopySlotsCall) -> list[IndexSet]:
    return [IndexSet(call.dst_slots, None, call.src_slots, call.mask, negative_row_skips=True)]


def resolve_entries(index_set: IndexSet, num_slots: int, num_rows: int, num_steps: int):
    """The index rules as tensor ops on the indices' device (no host sync).

    Returns ``(status, slot, row, step, applied)``: int32 status bits (0 for applied and skipped
    entries), the int64 slot, row and step of each entry, and whether it is applied (not
    skipped; it copies if its status is also 0). An entry is skipped when its mask is false, its
    step (+ step_offset) is negative, its destination slot is negative (PAD_SLOT_ID), or, with
    negative_row_skips (copy_slots), its source slot is negative.
    """
    slot = index_set.dst_slots.to(torch.int64)
    if index_set.steps is None:
        step = torch.zeros_like(slot)
    else:
        step = index_set.steps.to(torch.int64) + index_set.step_offset
    if index_set.src_rows is None:
        row = torch.arange(slot.numel(), device=slot.device, dtype=torch.int64)
    else:
        row = index_set.src_rows.to(torch.int64)
    applied = (step >= 0) & (slot >= 0)
    if index_set.negative_row_skips:
        applied &= row >= 0
    if index_set.mask is not None:
        applied &= index_set.mask
    status = (
        (slot >= num_slots).to(torch.int32) * index_set.slot_bit
        + ((row < 0) | (row >= num_rows)).to(torch.int32) * index_set.row_bit
        + (step >= num_steps).to(torch.int32) * index_set.step_bit
    )
    status = torch.where(applied, status, torch.zeros_like(status))
    return status, slot, row, step, applied


def describe_bad_entry(
    op, set_index, n, status, slot, row, step, num_slots, num_rows, num_steps
) -> str:
    """The message for entry n of an index set, naming the first bound it broke."""
    track = op == UPDATE and set_index == 1
    where = f"{op}entry {n}: "
    if status & (TRACK_SLOT_OUT_OF_RANGE if track else SLOT_OUT_OF_RANGE):
        return f"{where}{'track' if track else 'dst'} slot {slot} is out of range [0, {num_slots})"
    if status & ROW_OUT_OF_RANGE:
        name = "src slot" if op == COPY_SLOTS else "src row"
        return f"{where}{name} {row} is out of range [0, {num_rows})"
    source = f"track_steps[{n}]" if track else f"steps[{n}] + step_offset"
    return f"{where}step {step} ({source}) is out of range [0, {num_steps})"


def resolve_all(index_sets, num_slots, num_rows, num_steps):
    """resolve_entries for every set, stacked: ``[sets, 5, N]`` int64 on the indices' device."""
    resolved = [resolve_entries(s, num_slots, num_rows, num_steps) for s in index_sets]
    return torch.stack([torch.stack([t.to(torch.int64) for t in r]) for r in resolved])


def raise_for_first_bad_entry(op, resolved, num_slots, num_rows, num_steps) -> None:
    """IndexError for the first bad copy, entry by entry (the commit before the track copy), as
    the CPU kernel raises; ``resolved`` is resolve_all's, on the CPU."""
    status = resolved[:, 0]
    bad = torch.nonzero(status.t()).tolist()  # (entry, set), in entry order
    if bad:
        n, set_index = bad[0]
        _, slot, row, step, _ = resolved[set_index, :, n].tolist()
        raise IndexError(
            describe_bad_entry(
                op,
                set_index,
                n,
                int(status[set_index, n]),
                slot,
                row,
                step,
                num_slots,
                num_rows,
                num_steps,
            )
        )


def _writer_name(set_index: int, n: int) -> str:
    return f"track entry {n}" if set_index == 1 else f"entry {n}"


def _raise_for_shared_slots(op, resolved, num_sets) -> None:
    """IndexError for two applied copies that write the same slot, then (copy_slots) for a slot
    both read and written; ``resolved`` is resolve_all's, on the CPU."""
    writers = {}
    for set_index in range(num_sets):
        slots, applied = resolved[set_index, 1].tolist(), resolved[set_index, 4].tolist()
        for n, (slot, is_applied) in enumerate(zip(slots, applied)):
            if not is_applied:
                continue
            if slot in writers:
                first = writers[slot]
                if first[0] == set_index:
                    names = f"{'track entries' if set_index == 1 else 'entries'} {first[1]} and {n}"
                else:
                    names = f"{_writer_name(*first)} and {_writer_name(set_index, n)}"
                raise IndexError(f"{op}{names} both write dst slot {slot}")
            writers[slot] = (set_index, n)
    if op == COPY_SLOTS:
        rows, applied = resolved[0, 2].tolist(), resolved[0, 4].tolist()
        for n, (row, is_applied) in enumerate(zip(rows, applied)):
            if is_applied and row in writers:
                raise IndexError(
                    f"{op}entry {n} reads src slot {row}, which entry {writers[row][1]} writes"
                )


def check_entries(op, index_sets, num_slots, num_rows, num_steps) -> None:
    """The wrappers' ``check=True``: raises IndexError for the first bad copy, then for two
    applied copies that write the same slot, then (copy_slots) for a slot both read and written.
    One host sync for CUDA indices."""
    resolved = resolve_all(index_sets, num_slots, num_rows, num_steps).cpu()
    raise_for_first_bad_entry(op, resolved, num_slots, num_rows, num_steps)
    _raise_for_shared_slots(op, resolved, len(index_sets))


def check_after_call(op, index_sets, num_slots, num_rows, num_steps, entry_status) -> None:
    """After a call that wrote ``entry_status`` (on CUDA, where the op cannot raise without a
    sync): the sync, then the IndexError that ``check_entries`` raises before a call, for the bad
    entry the kernel reported; then the same check of shared slots. The call has applied the good
    entries by then."""
    status = entry_status.cpu()
    resolved = resolve_all(index_sets, num_slots, num_rows, num_steps).cpu()
    if bool(status.any()):
        raise_for_first_bad_entry(op, resolved, num_slots, num_rows, num_steps)
        raise RuntimeError(
            f"{op}the kernel reported entry_status {status.tolist()}, which the index rules "
            "do not (please report this)"
        )
    _raise_for_shared_slots(op, resolved, len(index_sets))
