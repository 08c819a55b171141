"""The argument checks and index rules of ``mamba_state::update``, in Python.

They mirror ``csrc/update_plan.cpp`` and ``csrc/copy_plan.h`` message for message: the Python
fallback and the wrapper's ``check=True`` use them, and the tests hold both implementations to the
same table of errors (``tests/error_cases.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

OP = "mamba_state.update: "
MAX_ENTRY_DIMS = 8
CONVERTED_FLOATS = (torch.float32, torch.float16, torch.bfloat16)

# Bits of entry_status: which bound an applied entry broke (0 for applied and skipped entries).
SLOT_OUT_OF_RANGE = 1
ROW_OUT_OF_RANGE = 2
STEP_OUT_OF_RANGE = 4


def _check_index_tensor(index: torch.Tensor, name: str, num_entries: int) -> None:
    if index.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{OP}{name} must be int32 or int64 (got {index.dtype})")
    if index.dim() != 1:
        raise ValueError(f"{OP}{name} must be 1-D (got shape {list(index.shape)})")
    if index.numel() != num_entries:
        raise ValueError(
            f"{OP}{name} has {index.numel()} entries but dst_slots has {num_entries}"
        )


def named_arguments(states, intermediates, dst_slots, steps, src_rows, entry_status):
    """Every tensor argument as (name, tensor, written), destinations first."""
    arguments = [(f"states[{k}]", state, True) for k, state in enumerate(states)]
    if entry_status is not None:
        arguments.append(("entry_status", entry_status, True))
    arguments += [(f"intermediates[{k}]", t, False) for k, t in enumerate(intermediates)]
    arguments += [("dst_slots", dst_slots, False), ("steps", steps, False)]
    if src_rows is not None:
        arguments.append(("src_rows", src_rows, False))
    return arguments


def check_update_args(
    states: Sequence[torch.Tensor],
    intermediates: Sequence[torch.Tensor],
    dst_slots: torch.Tensor,
    steps: torch.Tensor,
    src_rows: torch.Tensor | None = None,
    entry_status: torch.Tensor | None = None,
) -> None:
    """Shapes, dtypes and devices; reads no data (so it also serves as the fake kernel)."""
    if len(states) == 0:
        raise ValueError(f"{OP}states is empty: pass at least one state pool")
    if len(states) != len(intermediates):
        raise ValueError(
            f"{OP}states has {len(states)} tensors but intermediates has {len(intermediates)}"
        )
    for k, (state, intermediate) in enumerate(zip(states, intermediates)):
        if state.dim() < 2:
            raise ValueError(
                f"{OP}states[{k}] must be [layers, slots, *entry] (got shape {list(state.shape)})"
            )
        if intermediate.dim() < 3:
            raise ValueError(
                f"{OP}intermediates[{k}] must be [layers, rows, steps, *entry] "
                f"(got shape {list(intermediate.shape)})"
            )
        if state.dim() - 2 > MAX_ENTRY_DIMS:
            raise ValueError(
                f"{OP}states[{k}] has {state.dim() - 2} entry dims; "
                f"at most {MAX_ENTRY_DIMS} are supported"
            )
        if intermediate.shape[0] != state.shape[0]:
            raise ValueError(
                f"{OP}intermediates[{k}] has {intermediate.shape[0]} layers "
                f"but states[{k}] has {state.shape[0]}"
            )
        if intermediate.shape[3:] != state.shape[2:]:
            raise ValueError(
                f"{OP}intermediates[{k}] has entry shape {list(intermediate.shape[3:])} "
                f"but states[{k}] has {list(state.shape[2:])}"
            )
        if state.shape[1] != states[0].shape[1]:
            raise ValueError(
                f"{OP}states[{k}] has {state.shape[1]} slots but states[0] has "
                f"{states[0].shape[1]}: every pool must have the same slots"
            )
        if intermediate.shape[1:3] != intermediates[0].shape[1:3]:
            raise ValueError(
                f"{OP}intermediates[{k}] has {intermediate.shape[1]} rows and "
                f"{intermediate.shape[2]} steps but intermediates[0] has "
                f"{intermediates[0].shape[1]} rows and {intermediates[0].shape[2]} steps"
            )
        if state.dtype != intermediate.dtype and not (
            state.dtype in CONVERTED_FLOATS and intermediate.dtype in CONVERTED_FLOATS
        ):
            raise TypeError(
                f"{OP}states[{k}] is {state.dtype} but intermediates[{k}] is "
                f"{intermediate.dtype}: only float32, float16 and bfloat16 convert to one "
                "another; other dtypes must match"
            )
    num_entries = dst_slots.numel()
    _check_index_tensor(dst_slots, "dst_slots", num_entries)
    _check_index_tensor(steps, "steps", num_entries)
    if src_rows is not None:
        _check_index_tensor(src_rows, "src_rows", num_entries)
    if entry_status is not None:
        if entry_status.dtype != torch.int32:
            raise TypeError(f"{OP}entry_status must be int32 (got {entry_status.dtype})")
        if entry_status.dim() != 1 or entry_status.numel() != num_entries:
            raise ValueError(
                f"{OP}entry_status must have shape [{num_entries}], one per entry "
                f"(got {list(entry_status.shape)})"
            )
    device = states[0].device
    for name, tensor, _ in named_arguments(
        states, intermediates, dst_slots, steps, src_rows, entry_status
    ):
        if tensor.device != device:
            raise ValueError(f"{OP}{name} is on {tensor.device} but states[0] is on {device}")


def fake_update(
    states, intermediates, dst_slots, steps, src_rows=None, step_offset=0, entry_status=None
) -> None:
    """The fake (meta) kernel of the op, for both backends: the shape checks, nothing else."""
    check_update_args(states, intermediates, dst_slots, steps, src_rows, entry_status)


def _may_overlap_itself(tensor: torch.Tensor) -> bool:
    # With dims ordered by stride, each stride must step past all that the smaller dims span.
    if tensor.numel() == 0:
        return False
    span = 1
    for stride, size in sorted((tensor.stride(d), tensor.shape[d]) for d in range(tensor.dim())):
        if size > 1:
            if stride < span:
                return True
            span += stride * (size - 1)
    return False


def _byte_range(tensor: torch.Tensor) -> tuple[int, int]:
    if tensor.numel() == 0:
        return (0, 0)
    span = 1 + sum(stride * (size - 1) for stride, size in zip(tensor.stride(), tensor.shape))
    begin = tensor.data_ptr()
    return (begin, begin + span * tensor.element_size())


def check_no_overlap(states, intermediates, dst_slots, steps, src_rows, entry_status) -> None:
    """No destination may share memory with itself or with any other argument."""
    arguments = named_arguments(states, intermediates, dst_slots, steps, src_rows, entry_status)
    for i, (name, tensor, written) in enumerate(arguments):
        if not written:
            continue
        if _may_overlap_itself(tensor):
            raise ValueError(
                f"{OP}{name} has elements that share memory (an expanded or overlapping view): "
                "every destination element needs memory of its own"
            )
        begin, end = _byte_range(tensor)
        for j, (other_name, other, _) in enumerate(arguments):
            other_begin, other_end = _byte_range(other)
            if j != i and begin < end and other_begin < other_end:
                if begin < other_end and other_begin < end:
                    raise ValueError(
                        f"{OP}{name} shares memory with {other_name}: "
                        "a destination must not overlap any other argument"
                    )


def resolve_entries(dst_slots, steps, src_rows, step_offset, num_slots, num_rows, num_steps):
    """The index rules as tensor ops on the indices' device (no host sync).

    Returns ``(status, slot, row, step)``: int32 status bits (0 for applied and skipped entries),
    and the int64 slot, row and step (``steps + step_offset``; < 0 means skipped) of each entry.
    """
    step = steps.to(torch.int64) + step_offset
    slot = dst_slots.to(torch.int64)
    if src_rows is None:
        row = torch.arange(slot.numel(), device=slot.device, dtype=torch.int64)
    else:
        row = src_rows.to(torch.int64)
    status = (
        ((slot < 0) | (slot >= num_slots)).to(torch.int32) * SLOT_OUT_OF_RANGE
        + ((row < 0) | (row >= num_rows)).to(torch.int32) * ROW_OUT_OF_RANGE
        + (step >= num_steps).to(torch.int32) * STEP_OUT_OF_RANGE
    )
    status = torch.where(step >= 0, status, torch.zeros_like(status))
    return status, slot, row, step


def describe_bad_entry(n, status, slot, row, step, num_slots, num_rows, num_steps, *,
                       label="entry", step_source=None) -> str:
    """The message for entry n, naming the first bound it broke (as the C++ kernels do)."""
    if status & SLOT_OUT_OF_RANGE:
        return f"{OP}{label} {n}: dst slot {slot} is out of range [0, {num_slots})"
    if status & ROW_OUT_OF_RANGE:
        return f"{OP}{label} {n}: src row {row} is out of range [0, {num_rows})"
    step_source = step_source or f"steps[{n}] + step_offset"
    return f"{OP}{label} {n}: step {step} ({step_source}) is out of range [0, {num_steps})"


def raise_for_first_bad_entry(status, slot, row, step, num_slots, num_rows, num_steps, *,
                              label="entry", steps_name=None) -> None:
    """IndexError for the first entry with status bits; the arguments are resolve_entries'."""
    bad = torch.nonzero(status).flatten()
    if bad.numel():
        n = int(bad[0])
        raise IndexError(describe_bad_entry(
            n, int(status[n]), int(slot[n]), int(row[n]), int(step[n]), num_slots, num_rows,
            num_steps, label=label, step_source=steps_name and f"from {steps_name}[{n}]",
        ))


def check_entries(states, intermediates, dst_slots, steps, src_rows, step_offset, *,
                  label: str = "entry", steps_name: str | None = None) -> dict:
    """Raises IndexError for the first applied entry out of range, then for the first two
    applied entries that write the same slot. Returns {slot: the entry writing it}. One host sync
    for CUDA indices. ``label`` and ``steps_name`` name the entries and their steps in the
    messages (for callers whose arguments are not the op's)."""
    num_slots = states[0].shape[1]
    num_rows, num_steps = intermediates[0].shape[1:3]
    resolved = resolve_entries(
        dst_slots, steps, src_rows, step_offset, num_slots, num_rows, num_steps
    )
    status, slot, row, step = torch.stack([t.to(torch.int64) for t in resolved]).cpu()
    raise_for_first_bad_entry(status, slot, row, step, num_slots, num_rows, num_steps,
                              label=label, steps_name=steps_name)
    writer = {}
    for n, (entry_slot, entry_step) in enumerate(zip(slot.tolist(), step.tolist())):
        if entry_step < 0:
            continue
        if entry_slot in writer:
            raise IndexError(f"{OP}{label.replace('entry', 'entries')} {writer[entry_slot]} "
                             f"and {n} both write dst slot {entry_slot}")
        writer[entry_slot] = n
    return writer
