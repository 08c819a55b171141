"""Drop-ins for the Mamba state scatter of SGLang 0.5.22 and 0.5.23 (``sglang.kernels.ops.mamba.
mamba_state_scatter_triton``; the same six functions, with the same signatures, in both): the same
signatures and, on valid input, the same results bit for bit (tests/test_sglang_parity.py runs
each release's own kernels beside these). In a model runner::

    from mamba_state_ext.integrations.sglang import scatter_mamba_states_after_mtp_verify

Each function is one operator call, one CUDA kernel launch: SGLang launches one kernel per index
set for the SSM state, one for the conv windows, one for the track copies. Where they differ, on
input SGLang does not define:

- An out-of-range index (destination slot ``>= C``, source row outside ``[0, R)``, step ``>= T``)
  is never applied, nor is the rest of its entry. SGLang's scatter kernels skip just that copy,
  silently (its conv-window kernel does not check a negative source row, and reads out of
  bounds). By default these run as a server's hot path does, with no host sync: on the CPU the
  operator raises ``IndexError`` before anything is written, and on CUDA the bad entry is
  dropped without a trace. With ``MAMBA_STATE_EXT_CHECK=1`` (for bringing a server up) every call
  is checked: ``IndexError`` with the entry's position for an index out of range or two copies
  into one slot, raised before anything is written on the CPU, and on CUDA after the call, from
  the kernel's ``entry_status``, at the cost of a host sync per call.
- ``track_mamba_states_all_layers`` skips a negative slot whether or not ``check_freed_slots`` is
  set (SGLang reads and writes out of bounds without it), and refuses a slot ``>= C``.
- Any dtype pairing of pool and cache (float32, float16, bfloat16), any strides on either side.
"""

from __future__ import annotations

import os

import torch

from .. import checks, ops
from ..calls import CopySlotsCall, UpdateCall

# The SGLang releases whose functions these mirror: their signatures and semantics were read,
# and tests/test_sglang_parity.py runs each one's kernels beside these.
SGLANG_RELEASES = ("0.5.22", "0.5.23")
# The module of those releases that holds the functions mirrored here (and their Triton kernels).
SGLANG_SCATTER_MODULE = "sglang.kernels.ops.mamba.mamba_state_scatter_triton"
CHECK_ENV = "MAMBA_STATE_EXT_CHECK"


def checking() -> bool:
    """Whether MAMBA_STATE_EXT_CHECK=1 asks for every call to be checked (default 0)."""
    value = os.environ.get(CHECK_ENV, "0") or "0"
    if value not in ("0", "1"):
        raise ValueError(f"{CHECK_ENV} must be 0 or 1 (got {value!r})")
    return value == "1"


def _update(states, caches, dst_slots, steps, *, src_rows=None, track_slots=None, track_steps=None):
    """One update call, checked as MAMBA_STATE_EXT_CHECK says."""
    arguments = dict(src_rows=src_rows, track_slots=track_slots, track_steps=track_steps)
    if not checking():
        ops.update(states, caches, dst_slots, steps, check=False, **arguments)
    elif dst_slots.device.type == "cpu":
        ops.update(states, caches, dst_slots, steps, check=True, **arguments)
    else:
        status = torch.empty(dst_slots.numel(), dtype=torch.int32, device=dst_slots.device)
        ops.update(states, caches, dst_slots, steps, check=False, entry_status=status, **arguments)
        call = UpdateCall(states, caches, dst_slots, steps, **arguments)
        checks.check_after_call(
            checks.UPDATE,
            checks.update_index_sets(call),
            states[0].shape[1],
            *caches[0].shape[1:3],
            status,
        )


def _copy_slots(pools, src_slots, dst_slots, *, mask):
    """One copy_slots call, checked as MAMBA_STATE_EXT_CHECK says."""
    if not checking():
        ops.copy_slots(pools, src_slots, dst_slots, mask=mask, check=False)
    elif dst_slots.device.type == "cpu":
        ops.copy_slots(pools, src_slots, dst_slots, mask=mask, check=True)
    else:
        status = torch.empty(dst_slots.numel(), dtype=torch.int32, device=dst_slots.device)
        ops.copy_slots(pools, src_slots, dst_slots, mask=mask, check=False, entry_status=status)
        call = CopySlotsCall(pools, src_slots, dst_slots, mask=mask)
        num_slots = pools[0].shape[1]
        checks.check_after_call(
            checks.COPY_SLOTS, checks.copy_slots_index_sets(call), num_slots, num_slots, 1, status
        )


def scatter_mamba_states_after_mtp_verify(
    mamba_caches,
    state_indices_tensor: torch.Tensor,
    last_correct_step_indices: torch.Tensor,
    mamba_track_indices: torch.Tensor | None,
    mamba_steps_to_track: torch.Tensor | None,
    src_indices_raw: torch.Tensor | None = None,
) -> None:
    """Commits every request's state at its last accepted step, every state kind (``temporal``
    from ``intermediate_ssm``, each ``conv[i]`` from ``intermediate_conv_window[i]``) and layer,
    plus the track copies (``mamba_steps_to_track[n] >= 0`` into ``mamba_track_indices[n]``), in
    one operator call. A step of -1 skips a copy, as does a slot of -1 (``PAD_SLOT_ID``). The
    caches are read at row ``src_indices_raw[n]``, by default ``n``. By default no host sync: on
    CUDA an index out of range drops its entry without a trace; ``MAMBA_STATE_EXT_CHECK=1``
    raises for it (the module's docstring).
    """
    states, caches = [], []
    if mamba_caches.intermediate_ssm is not None and mamba_caches.temporal.numel() > 0:
        states.append(mamba_caches.temporal)
        caches.append(mamba_caches.intermediate_ssm)
    for conv, window in zip(mamba_caches.conv, mamba_caches.intermediate_conv_window):
        if conv.numel() > 0:
            states.append(conv)
            caches.append(window)
    if not states:
        return
    _update(
        states,
        caches,
        state_indices_tensor,
        last_correct_step_indices,
        src_rows=src_indices_raw,
        track_slots=mamba_track_indices,
        track_steps=mamba_steps_to_track,
    )


def track_mamba_states_all_layers(
    conv_states_pool: torch.Tensor,
    ssm_states_pool: torch.Tensor,
    cache_indices: torch.Tensor,
    mamba_track_mask: torch.Tensor,
    mamba_track_indices: torch.Tensor,
    batch_size: int,
    check_freed_slots: bool = False,
) -> None:
    """For each of the first ``batch_size`` requests with ``mamba_track_mask`` set, copies its
    conv and SSM state, every layer, from slot ``cache_indices[n]`` to slot
    ``mamba_track_indices[n]``: one operator call. Negative slots are skipped whatever
    ``check_freed_slots`` says (it is accepted for the signature's sake)."""
    del check_freed_slots  # always safe here
    _copy_tracked(
        [conv_states_pool, ssm_states_pool],
        cache_indices,
        mamba_track_mask,
        mamba_track_indices,
        batch_size,
    )


def _copy_tracked(pools, cache_indices, mamba_track_mask, mamba_track_indices, batch_size):
    """The first batch_size entries' track copies (a nonzero mask entry tracks)."""
    if batch_size == 0:
        return
    mask = mamba_track_mask[:batch_size]
    if mask.dtype != torch.bool:
        mask = mask != 0
    _copy_slots(pools, cache_indices[:batch_size], mamba_track_indices[:batch_size], mask=mask)


def fused_conv_window_scatter_with_mask(
    dst: torch.Tensor,
    src: torch.Tensor,
    dst_indices_raw: torch.Tensor,
    step_indices_raw: torch.Tensor,
    src_indices_raw: torch.Tensor | None = None,
) -> None:
    """One state kind's commit: ``dst[:, dst_indices_raw[n]] = src[:, src_indices_raw[n],
    step_indices_raw[n]]`` where the step is ``>= 0`` (source row n by default); ``src`` may be
    the de-duplicated conv-window cache (an overlapping view)."""
    if step_indices_raw.shape[0] == 0 or dst.numel() == 0:
        return
    _update([dst], [src], dst_indices_raw, step_indices_raw, src_rows=src_indices_raw)


# SGLang's SSM-state scatter has the same signature and semantics: one function serves both.
fused_mamba_state_scatter_with_mask = fused_conv_window_scatter_with_mask


def fused_conv_window_scatter_multi(
    pairs,
    dst_indices_raw: torch.Tensor,
    step_indices_raw: torch.Tensor,
    dst_indices2_raw: torch.Tensor | None = None,
    step_indices2_raw: torch.Tensor | None = None,
) -> None:
    """Every (pool, window cache) pair's commit, and the second index set's (the track copies),
    each set reading row n for its entry n: one operator call when the sets have one length."""
    states = [dst for dst, _ in pairs]
    caches = [src for _, src in pairs]
    second = step_indices2_raw is not None and step_indices2_raw.shape[0] > 0
    if second and step_indices2_raw.shape[0] == step_indices_raw.shape[0]:
        _update(
            states,
            caches,
            dst_indices_raw,
            step_indices_raw,
            track_slots=dst_indices2_raw,
            track_steps=step_indices2_raw,
        )
        return
    if step_indices_raw.shape[0] > 0:
        _update(states, caches, dst_indices_raw, step_indices_raw)
    if second:
        _update(states, caches, dst_indices2_raw, step_indices2_raw)


def track_mamba_states_if_needed(
    conv_states: torch.Tensor,
    ssm_states: torch.Tensor,
    cache_indices: torch.Tensor,
    mamba_track_mask: torch.Tensor,
    mamba_track_indices: torch.Tensor,
    batch_size: int,
    check_freed_slots: bool = False,
) -> None:
    """One layer's track copy: the pools are [C, *E] (a layer of a pool each); as
    ``track_mamba_states_all_layers``, negative slots are skipped whatever
    ``check_freed_slots`` says."""
    del check_freed_slots  # always safe here
    _copy_tracked(
        [conv_states.unsqueeze(0), ssm_states.unsqueeze(0)],
        cache_indices,
        mamba_track_mask,
        mamba_track_indices,
        batch_size,
    )
