"""The pure-PyTorch implementation of ``mamba_state::update`` and ``mamba_state::copy_slots``,
registered under the same schemas when the compiled library is missing (or
``MAMBA_STATE_EXT_BACKEND=python``), and for CUDA tensors when the library was built without CUDA.

It follows the contract of the compiled kernels: on the CPU it raises before it writes anything;
elsewhere it cannot raise without a host sync, so it applies nothing of a bad entry and reports it
in ``entry_status``. Off the CPU it never syncs: copies that do nothing are pointed at one that
does, so the scatter needs no boolean mask. It gathers the selected entries into a temporary first
(as advanced indexing does), so it moves twice the bytes of the compiled kernels.
"""

from __future__ import annotations

import torch

from . import checks

# The operators' schemas; the compiled library declares the same strings
# (csrc/torch_bindings.cpp; tests/test_backends.py holds them equal).
SCHEMAS = {
    "update": (
        "update(Tensor(a!)[] states, Tensor[] intermediates, Tensor dst_slots, Tensor steps, "
        "Tensor? src_rows=None, int step_offset=0, Tensor(b!)? entry_status=None, "
        "Tensor? track_slots=None, Tensor? track_steps=None) -> ()"
    ),
    "copy_slots": (
        "copy_slots(Tensor(a!)[] states, Tensor src_slots, Tensor dst_slots, Tensor? mask=None, "
        "Tensor(b!)? entry_status=None) -> ()"
    ),
}


def _apply(op, states, sources, index_sets, num_rows, num_steps, entry_status) -> None:
    """Copies every applied, in-range entry of the index sets from sources[k] ([L, R, T, *E])
    into states[k]; raises first on the CPU, else reports bad entries in entry_status."""
    num_slots = states[0].shape[1]
    resolved = checks.resolve_all(index_sets, num_slots, num_rows, num_steps)
    if states[0].device.type == "cpu":  # here raising costs no sync: raise before any write
        checks.raise_for_first_bad_entry(op, resolved, num_slots, num_rows, num_steps)
    status, slot, row, step, applied = resolved.transpose(0, 1).flatten(1)  # sets laid end to end
    if entry_status is not None:
        per_set = status.view(len(index_sets), -1)
        combined = per_set[0]
        for more in per_set[1:]:
            combined = combined | more  # the sets share the row bit: or, not add
        entry_status.copy_(combined)
    copies = (applied != 0) & (status == 0)
    if copies.numel() == 0:
        return
    if states[0].device.type == "cpu":
        # A host read costs nothing here: keep the copying entries alone.
        chosen = copies.nonzero().squeeze(1)
        keep = None
    else:
        # No host sync: every copy that does nothing takes the slot and value of the first copy
        # that does, so that a repeated slot receives identical bytes. If none copies, all of
        # them rewrite slot 0 with its own current bytes (clamped, so that nothing is read or
        # written out of bounds), which takes the one masked write below.
        first_copying = torch.argmax(copies.to(torch.uint8))
        chosen = torch.where(copies, torch.arange(copies.numel(), device=slot.device),
                             first_copying)
        keep = copies[chosen]
    if chosen.numel() == 0:  # on the CPU: nothing copies
        return
    slot = slot.clamp(0, num_slots - 1)[chosen]
    row = row.clamp(0, num_rows - 1)[chosen]
    step = step.clamp(0, num_steps - 1)[chosen]
    for state, intermediate in zip(states, sources):
        values = intermediate[:, row, step].to(state.dtype)
        if keep is not None:
            mask = keep.view(1, -1, *([1] * (state.dim() - 2)))
            values = torch.where(mask, values, state[:, slot])
        state[:, slot] = values


def update(
    states: list[torch.Tensor],
    intermediates: list[torch.Tensor],
    dst_slots: torch.Tensor,
    steps: torch.Tensor,
    src_rows: torch.Tensor | None = None,
    step_offset: int = 0,
    entry_status: torch.Tensor | None = None,
    track_slots: torch.Tensor | None = None,
    track_steps: torch.Tensor | None = None,
) -> None:
    checks.check_update_args(states, intermediates, dst_slots, steps, src_rows, entry_status,
                             track_slots, track_steps)
    checks.check_no_overlap(checks.UPDATE, checks.update_arguments(
        states, intermediates, dst_slots, steps, src_rows, entry_status, track_slots,
        track_steps))
    index_sets = checks.update_index_sets(dst_slots, steps, src_rows, step_offset, track_slots,
                                          track_steps)
    num_rows, num_steps = intermediates[0].shape[1:3]
    _apply(checks.UPDATE, states, intermediates, index_sets, num_rows, num_steps, entry_status)


def copy_slots(
    states: list[torch.Tensor],
    src_slots: torch.Tensor,
    dst_slots: torch.Tensor,
    mask: torch.Tensor | None = None,
    entry_status: torch.Tensor | None = None,
) -> None:
    checks.check_copy_slots_args(states, src_slots, dst_slots, mask, entry_status)
    checks.check_no_overlap(checks.COPY_SLOTS, checks.copy_slots_arguments(
        states, src_slots, dst_slots, mask, entry_status))
    # Each pool is its own source: [L, C, *E] read as [L, C, 1, *E]. The gather completes before
    # the scatter, so an unspecified read-write order is still one of the two orders.
    sources = [state.unsqueeze(2) for state in states]
    index_sets = checks.copy_slots_index_sets(src_slots, dst_slots, mask)
    _apply(checks.COPY_SLOTS, states, sources, index_sets, states[0].shape[1], 1, entry_status)


IMPLEMENTATIONS = {"update": update, "copy_slots": copy_slots}
FAKES = {"update": checks.fake_update, "copy_slots": checks.fake_copy_slots}


def define(library: torch.library.Library) -> None:
    """Declares the schemas in ``library`` (a "DEF" library), with these implementations for
    every backend and the fake kernels."""
    for name, schema in SCHEMAS.items():
        library.define(schema)
        library.impl(name, IMPLEMENTATIONS[name], "CompositeExplicitAutograd")
        torch.library.register_fake(f"mamba_state::{name}", FAKES[name], lib=library)
