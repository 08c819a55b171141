"""The pure-PyTorch implementation of ``mamba_state::update``, registered under the same schema
when the compiled library is missing (or ``MAMBA_STATE_EXT_BACKEND=python``), and for CUDA
tensors when the library was built without CUDA.

It follows the contract of the compiled kernels: on the CPU it raises before it writes anything;
elsewhere it cannot raise without a host sync, so it applies nothing of a bad entry and reports it
in ``entry_status``. It never syncs: entries that copy nothing are pointed at one that does, so the
scatter needs no boolean mask. It gathers the selected entries into a temporary first (as the
seed's advanced indexing does), so it moves twice the bytes of the compiled kernels.
"""

from __future__ import annotations

import torch

from . import checks

# The operator's schema; the compiled library declares the same string (tests/test_backends.py).
SCHEMA = (
    "update(Tensor(a!)[] states, Tensor[] intermediates, Tensor dst_slots, Tensor steps, "
    "Tensor? src_rows=None, int step_offset=0, Tensor(b!)? entry_status=None) -> ()"
)


def update(
    states: list[torch.Tensor],
    intermediates: list[torch.Tensor],
    dst_slots: torch.Tensor,
    steps: torch.Tensor,
    src_rows: torch.Tensor | None = None,
    step_offset: int = 0,
    entry_status: torch.Tensor | None = None,
) -> None:
    checks.check_update_args(states, intermediates, dst_slots, steps, src_rows, entry_status)
    checks.check_no_overlap(states, intermediates, dst_slots, steps, src_rows, entry_status)
    num_slots = states[0].shape[1]
    num_rows, num_steps = intermediates[0].shape[1:3]
    status, slot, row, step = checks.resolve_entries(
        dst_slots, steps, src_rows, step_offset, num_slots, num_rows, num_steps
    )
    if states[0].device.type == "cpu":  # here raising costs no sync: raise before any write
        checks.raise_for_first_bad_entry(status, slot, row, step, num_slots, num_rows, num_steps)
    if entry_status is not None:
        entry_status.copy_(status)
    num_entries = slot.numel()
    if num_entries == 0:
        return
    copies = (step >= 0) & (status == 0)
    # Every entry that copies nothing takes the slot and value of the first entry that copies, so
    # that a repeated slot receives identical bytes and no boolean mask (a host sync) is needed.
    # If none copies, all of them rewrite entry 0's slot with its own current bytes. Indices are
    # clamped first, so that nothing is read or written out of bounds.
    first_copying = torch.argmax(copies.to(torch.uint8))
    source_entry = torch.where(
        copies, torch.arange(num_entries, device=slot.device), first_copying
    )
    copies = copies[source_entry]
    slot = slot.clamp(0, num_slots - 1)[source_entry]
    row = row.clamp(0, num_rows - 1)[source_entry]
    step = step.clamp(0, num_steps - 1)[source_entry]
    for state, intermediate in zip(states, intermediates):
        values = intermediate[:, row, step].to(state.dtype)
        keep = copies.view(1, num_entries, *([1] * (state.dim() - 2)))
        state[:, slot] = torch.where(keep, values, state[:, slot])


def define(library: torch.library.Library) -> None:
    """Declares the schema in ``library`` (a "DEF" library), with this implementation for every
    backend and the fake kernel."""
    library.define(SCHEMA)
    library.impl("update", update, "CompositeExplicitAutograd")
    torch.library.register_fake("mamba_state::update", checks.fake_update, lib=library)
