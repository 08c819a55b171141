"""The methods timed: what servers do now (a Python loop, advanced indexing, SGLang's own
kernels), this package's operator, and the roofline (a same-byte copy_, an empty launch)."""

from __future__ import annotations

import types
from collections.abc import Callable

import torch

import mamba_state_ext
from mamba_state_ext import reference

from . import sglang_baseline
from .workload import Skip, Workload


def _scales(w: Workload) -> dict:
    """The quantized pools' scales, for a preset that has them."""
    return {"state_scales": w.state_scales} if w.preset.quantized else {}


def _ours(w: Workload, i: int) -> None:
    s = w.index_sets[i]
    mamba_state_ext.commit_verified_states(
        w.states,
        s.caches,
        s.slots,
        s.steps,
        src_rows=s.rows,
        track_indices=s.track_slots,
        steps_to_track=s.track_steps,
        **_scales(w),
    )


def _baseline(update):
    """A baseline of reference.py, which takes update's arguments."""

    def call(w: Workload, i: int) -> None:
        s = w.index_sets[i]
        update(
            w.states,
            s.caches,
            s.slots,
            s.steps,
            src_rows=s.rows,
            track_slots=s.track_slots,
            track_steps=s.track_steps,
            **_scales(w),
        )

    return call


_sglang_kernels = None


def _sglang(w: Workload, i: int) -> None:
    """SGLang's own scatter_mamba_states_after_mtp_verify (CUDA only)."""
    if w.preset.quantized:
        raise Skip("SGLang's kernels write no quantized pool")
    s = w.index_sets[i]
    ssm_pool, conv_pool = w.states
    ssm_cache, conv_cache = s.caches
    caches = types.SimpleNamespace(
        temporal=ssm_pool,
        intermediate_ssm=ssm_cache,
        conv=[conv_pool],
        intermediate_conv_window=[conv_cache],
    )
    _sglang_kernels.scatter_mamba_states_after_mtp_verify(
        caches, s.slots, s.steps, s.track_slots, s.track_steps, s.rows
    )


def _copy(w: Workload, i: int) -> None:
    source, destination = w.copy_buffers(i)
    destination.copy_(source)


def _empty_launch(w: Workload, i: int) -> None:
    torch.cuda._sleep(0)


def load_sglang(device: torch.device, source: str | None) -> str | None:
    """Loads SGLang's kernels for the `sglang` method; returns why it cannot run, or None."""
    global _sglang_kernels
    if device.type != "cuda":
        return "sglang: its kernels refuse CPU tensors (CUDA only)"
    try:
        _sglang_kernels = sglang_baseline.load_scatter(source)
    except ImportError as error:
        return f"sglang: not loaded: {error}"
    return None


# name -> (call, writes the pools). "sglang" and "empty_launch" run on CUDA only.
METHODS: dict[str, tuple[Callable[[Workload, int], None], bool]] = {
    "loop": (_baseline(reference.loop_update), True),
    "vectorized": (_baseline(reference.vectorized_update), True),
    "sglang": (_sglang, True),
    "mamba_state": (_ours, True),
    "copy": (_copy, False),
    "empty_launch": (_empty_launch, False),
}
