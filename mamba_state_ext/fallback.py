"""The pure-PyTorch implementation of ``mamba_state::update`` and ``mamba_state::copy_slots``,
registered under the same schemas when the compiled library is missing (or
``MAMBA_STATE_EXT_BACKEND=python``), and for CUDA tensors when the library was built without CUDA.

It follows the contract of the compiled kernels: the same checks and messages; on the CPU it
raises for a bad entry before it writes anything, elsewhere it applies nothing of a bad entry and
reports it in ``entry_status``; it writes the selected slots and no other byte; it quantizes with
quantization.quantize. Unlike the CUDA
kernel it reads the resolved entries to the host (a sync off the CPU): writing only the entries
that copy takes knowing how many do. It gathers the selected entries into a temporary first (as
advanced indexing does), so it moves twice the bytes of the compiled kernels.
"""

from __future__ import annotations

import torch

from . import checks
from .calls import CopySlotsCall, UpdateCall
from .quantization import quantize

# The operators' schemas; the compiled library declares the same strings
# (csrc/operators.h; tests/test_backends.py holds them equal).
SCHEMAS = {
    "update": (
        "update(Tensor(a!)[] states, Tensor[] intermediates, Tensor dst_slots, Tensor steps, "
        "Tensor? src_rows=None, int step_offset=0, Tensor(b!)? entry_status=None, "
        "Tensor? track_slots=None, Tensor? track_steps=None, int[]? scaled_kinds=None, "
        "Tensor(c!)[]? state_scales=None, Tensor?[]? intermediate_scales=None, "
        "float[]? quant_max=None) -> ()"
    ),
    "copy_slots": (
        "copy_slots(Tensor(a!)[] states, Tensor src_slots, Tensor dst_slots, Tensor? mask=None, "
        "Tensor(b!)? entry_status=None) -> ()"
    ),
}


def _apply(op, kinds, index_sets, num_rows, num_steps, entry_status) -> None:
    """Applies every applied, in-range entry of the index sets to each kind (pool, source
    ``[L, R, T, *E]``, its scales or None); raises first on the CPU, else reports bad entries in
    entry_status."""
    num_slots = kinds[0][0].shape[1]
    resolved = checks.resolve_all(index_sets, num_slots, num_rows, num_steps)
    if kinds[0][0].device.type == "cpu":
        checks.raise_for_first_bad_entry(op, resolved, num_slots, num_rows, num_steps)
    status, slot, row, step, applied = resolved.transpose(0, 1).flatten(1)  # sets laid end to end
    per_set = status.view(len(index_sets), -1)
    combined = per_set[0]
    for more in per_set[1:]:
        combined = combined | more  # the sets share the row bit: or, not add
    if entry_status is not None:
        entry_status.copy_(combined)
    # A bad entry applies none of its copies: a good commit is left undone if its track copy is bad.
    entry_good = (combined == 0).repeat(len(index_sets))
    copying = ((applied != 0) & entry_good).nonzero().squeeze(1)  # the host read
    if copying.numel() == 0:
        return
    slot, row, step = slot[copying], row[copying], step[copying]
    for state, source, scales in kinds:
        values = source[:, row, step]
        if scales is None:
            state[:, slot] = values.to(state.dtype)
        elif scales.intermediate_scales is not None:  # a quantized cache: copied as it is
            state[:, slot] = values
            scales.state_scales[:, slot] = scales.intermediate_scales[:, row, step]
        else:  # quantized on commit
            groups = scales.state_scales.shape[2:]
            qmax = scales.qmax(state.dtype)
            state[:, slot], scales.state_scales[:, slot] = quantize(
                values, state.dim() - 2, groups, state.dtype, qmax
            )


def update(*args, **kwargs) -> None:
    call = UpdateCall(*args, **kwargs)
    checks.check_update(call)
    num_rows, num_steps = call.intermediates[0].shape[1:3]
    quantized = checks.quantized_kinds(call)
    kinds = [
        (state, intermediate, quantized.get(k))
        for k, (state, intermediate) in enumerate(zip(call.states, call.intermediates))
    ]
    _apply(
        checks.UPDATE,
        kinds,
        checks.update_index_sets(call),
        num_rows,
        num_steps,
        call.entry_status,
    )


def copy_slots(*args, **kwargs) -> None:
    call = CopySlotsCall(*args, **kwargs)
    checks.check_copy_slots(call)
    # Each pool is its own source: [L, C, *E] read as [L, C, 1, *E]. The gather completes before
    # the scatter, so an unspecified read-write order is still one of the two orders.
    _apply(
        checks.COPY_SLOTS,
        [(state, state.unsqueeze(2), None) for state in call.states],
        checks.copy_slots_index_sets(call),
        call.states[0].shape[1],
        1,
        call.entry_status,
    )


IMPLEMENTATIONS = {"update": update, "copy_slots": copy_slots}
FAKES = {"update": checks.fake_update, "copy_slots": checks.fake_copy_slots}


def define(library: torch.library.Library) -> None:
    """Declares the schemas in ``library`` (a "DEF" library), with these implementations for
    every backend and the fake kernels."""
    for name, schema in SCHEMAS.items():
        library.define(schema)
        library.impl(name, IMPLEMENTATIONS[name], "CompositeExplicitAutograd")
        torch.library.register_fake(f"mamba_state::{name}", FAKES[name], lib=library)
