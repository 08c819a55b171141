"""The host's fixed cost of one commit: Qwen3-Next's two state kinds and 36 layers (TP4), 64
entries all masked (steps -1) with track sets, so that the call copies nothing and its time is
all argument handling, checks, plan and (on CUDA) launch. Timed on the host, the calls taking
turns with a same-device ``copy_`` of one element, in rounds, medians of each."""

from __future__ import annotations

import statistics
import time

import torch

import mamba_state_ext

from .presets import PRESETS
from .workload import conv_window_view

ENTRIES = 64


def _commit_arguments(device: torch.device):
    """A commit's arguments, in the SGLang layouts, over untouched memory (torch.empty)."""
    preset = PRESETS["sglang-qwen3-next-tp4"]
    ssm, conv = preset.kinds
    slots = 2 * ENTRIES + 1
    states = [
        torch.empty(preset.layers, slots, *kind.entry, dtype=kind.state_dtype, device=device)
        for kind in (ssm, conv)
    ]
    ssm_cache = torch.empty(
        preset.layers,
        ENTRIES + 1,
        preset.steps,
        *ssm.entry,
        dtype=ssm.intermediate_dtype,
        device=device,
    )
    conv_dim, width = conv.entry
    window = conv_window_view(
        torch.empty(
            preset.layers,
            ENTRIES + 1,
            conv_dim,
            preset.steps + width - 1,
            dtype=conv.intermediate_dtype,
            device=device,
        ),
        preset.steps,
    )
    index = dict(device=device, dtype=torch.int64)
    masked = torch.full((ENTRIES,), -1, **index)
    return (
        states,
        [ssm_cache, window],
        torch.arange(ENTRIES, **index),
        masked,
        torch.arange(ENTRIES, 2 * ENTRIES, **index),
        masked,
    )


def measure(device: torch.device, *, rounds: int = 200, calls: int = 50) -> dict:
    """Median microseconds per call: ``copy_1`` (one element), ``raw`` (the operator),
    ``commit`` (commit_verified_states); and raw's median ratio to copy_1 within a round."""
    states, caches, slots, steps, track_slots, track_steps = _commit_arguments(device)
    source, destination = torch.zeros(1, device=device), torch.zeros(1, device=device)
    operator = torch.ops.mamba_state.update
    methods = {
        "copy_1": lambda: destination.copy_(source),
        "raw": lambda: operator(
            states, caches, slots, steps, track_slots=track_slots, track_steps=track_steps
        ),
        "commit": lambda: mamba_state_ext.commit_verified_states(
            states, caches, slots, steps, track_indices=track_slots, steps_to_track=track_steps
        ),
    }
    for method in methods.values():
        for _ in range(calls):
            method()
    times = {name: [] for name in methods}
    for _ in range(rounds):
        for name, method in methods.items():
            started = time.perf_counter()
            for _ in range(calls):
                method()
            times[name].append((time.perf_counter() - started) / calls * 1e6)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # keep the queue short
    result = {name: statistics.median(samples) for name, samples in times.items()}
    result["raw_vs_copy_1"] = statistics.median(
        raw / copy for raw, copy in zip(times["raw"], times["copy_1"])
    )
    return result


def format_lines(cost: dict) -> list[str]:
    return [
        f"host cost of one commit (2 kinds x 36 layers, {ENTRIES} entries all masked, track "
        f"sets): raw op {cost['raw']:.2f} us, commit_verified_states {cost['commit']:.2f} us, "
        f"copy_ of 1 element {cost['copy_1']:.2f} us; raw / copy_ {cost['raw_vs_copy_1']:.2f}"
    ]
