"""The MTP-verify commit of a hybrid linear-attention model runner, as one call.

After the target model verifies the draft tokens, a server commits, for every request, the state
at the last accepted step of every state kind (SSM, conv, ...) into its pool slot, and, with prefix
caching, copies the state at a "track" step into a tracking slot. Both forms servers use:

- accepted *lengths* (0: nothing accepted), caches indexed by pool slot:
  ``commit_verified_states(pools, caches, slots, lengths, src_rows=slots,
  accepted_are_lengths=True)``
- accepted *step indices* (-1: none), caches indexed by the request's position in the batch,
  plus the track copy:
  ``commit_verified_states(pools, caches, slots, steps, track_indices=t, steps_to_track=s)``
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import checks
from .ops import TensorOrList, as_list, update, update_options


def commit_verified_states(
    states: TensorOrList,
    intermediates: TensorOrList,
    state_indices: torch.Tensor,
    accepted: torch.Tensor,
    *,
    src_rows: torch.Tensor | None = None,
    accepted_are_lengths: bool = False,
    track_indices: torch.Tensor | None = None,
    steps_to_track: torch.Tensor | None = None,
    state_scales: Sequence[torch.Tensor | None] | None = None,
    intermediate_scales: Sequence[torch.Tensor | None] | None = None,
    quant_max: float | Sequence[float | None] | None = None,
    check: bool = False,
) -> None:
    """Commits each request's last accepted state, and the track copies, with no host sync.

    Args:
        states, intermediates: the pools ``[L, C, *E]`` and caches ``[L, R, T, *E]``, one per
            state kind (a tensor or a list).
        state_indices: ``[N]`` each request's pool slot.
        accepted: ``[N]`` the last accepted step of each request, -1 for none; or, with
            ``accepted_are_lengths``, the number of accepted steps, 0 for none.
        src_rows: ``[N]`` each request's row in the caches; default its position in the batch
            (pass ``state_indices`` for caches indexed by pool slot).
        track_indices, steps_to_track: ``[N]`` each, together or not at all: copy the state at
            step ``steps_to_track[n]`` (-1: none) into slot ``track_indices[n]``.
        state_scales, intermediate_scales, quant_max: quantized pools, as ``update`` takes
            them; the track copies are quantized the same way.
        check: validate the indices first (a host sync): ranges, and no slot written twice by
            the commit and the track copies together. The checks are ``update``'s, and their
            errors name its arguments: ``slots`` (``state_indices``), ``steps`` (``accepted``,
            with ``step_offset`` -1 for lengths), ``track_slots`` (``track_indices``) and
            ``track_steps`` (``steps_to_track``).

    The whole commit, track copies included, is one operator call: one kernel launch on CUDA,
    one parallel pass on the CPU, with the index tensors used as they are. ``check`` defaults to
    False here, unlike ``update``: this is the decode loop's hot path, where a check's host sync
    would stall every step; turn it on while bringing a server up.
    """
    if (track_indices is None) != (steps_to_track is None):
        raise ValueError(
            f"{checks.UPDATE}pass track_indices and steps_to_track together, or neither"
        )
    step_offset = -1 if accepted_are_lengths else 0
    if check:
        update(
            states,
            intermediates,
            state_indices,
            accepted,
            src_rows=src_rows,
            step_offset=step_offset,
            check=True,
            track_slots=track_indices,
            track_steps=steps_to_track,
            state_scales=state_scales,
            intermediate_scales=intermediate_scales,
            quant_max=quant_max,
        )
        return
    # The hot path: straight to the operator, without update's argument handling.
    states, intermediates = as_list(states, "states"), as_list(intermediates, "intermediates")
    options = update_options(
        states,
        intermediates,
        src_rows=src_rows,
        step_offset=step_offset,
        track_slots=track_indices,
        track_steps=steps_to_track,
        state_scales=state_scales,
        intermediate_scales=intermediate_scales,
        quant_max=quant_max,
    )
    torch.ops.mamba_state.update(states, intermediates, state_indices, accepted, **options)
