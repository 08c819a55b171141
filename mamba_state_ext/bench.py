"""How much faster than what a server does now, on real shapes: ``python -m mamba_state_ext.bench``.

Every method commits the same entries into the same pools (all entries applied, distinct slots),
is first checked bit for bit against a direct gather, then timed: warm-up, then the median of
many calls, rotating among index sets that together touch at least four times the last-level
cache, so that repeats are not served from it. On the CPU a call's time is its wall time. On the
GPU it is its device time (CUDA events, with the call queued behind a sleep kernel so that the
host's issue time stays out), and ``host_us`` is the host's time to issue it: a Python loop or a
Triton launcher can cost more there than on the GPU. Effective GB/s counts the bytes each call
must read and write (intermediates read once, pools written once) over the median time. ``copy``
is a plain ``copy_`` of as many bytes: the roofline. A result's ``extra_mib`` is the peak memory
one call allocates (CUDA only; None on the CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

import mamba_state_ext
from mamba_state_ext import reference
from mamba_state_ext.integrations import sglang_kernels

MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class StateKind:
    name: str
    entry: tuple[int, ...]
    state_dtype: torch.dtype
    intermediate_dtype: torch.dtype

    def bytes_per_layer(self) -> int:
        """One entry of one layer: read from the intermediate, written to the pool."""
        element_bytes = self.state_dtype.itemsize + self.intermediate_dtype.itemsize
        return math.prod(self.entry) * element_bytes

    def describe(self) -> str:
        return f"{self.name} {list(self.entry)} {str(self.state_dtype).removeprefix('torch.')}"


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    layers: int
    kinds: tuple[StateKind, ...]  # the SSM state first, then the conv window
    steps: int = 4  # draft tokens T
    conv_kernel: int = 4  # K: a conv window holds K - 1 steps
    # SGLang's layouts: the conv cache is the de-duplicated window (T overlapping windows over
    # one [conv_dim, T + K - 2] buffer per row), the caches are indexed by the request's position
    # in the batch (R = N + 1 rows), and the commit comes with track copies.
    sglang_layout: bool = False

    def bytes_per_entry(self) -> int:
        return self.layers * sum(kind.bytes_per_layer() for kind in self.kinds)


def qwen3_next(tp: int, *, sglang_layout: bool = False) -> Preset:
    """Qwen3-Next-80B-A3B at tensor parallelism tp: 36 linear-attention layers, SSM state
    [32/tp, 128, 128] float32, conv window [8192/tp, 3] bfloat16."""
    name = f"{'sglang-' if sglang_layout else ''}qwen3-next-tp{tp}"
    return Preset(name, 36, (
        StateKind("ssm", (32 // tp, 128, 128), torch.float32, torch.float32),
        StateKind("conv", (8192 // tp, 3), torch.bfloat16, torch.bfloat16),
    ), sglang_layout=sglang_layout)


PRESETS = {preset.name: preset for preset in (
    qwen3_next(4),
    qwen3_next(1),
    qwen3_next(4, sglang_layout=True),
    qwen3_next(1, sglang_layout=True),
    Preset("small", 8, (StateKind("ssm", (4, 64, 64), torch.float32, torch.float32),
                        StateKind("conv", (512, 3), torch.bfloat16, torch.bfloat16))),
)}
DEFAULT_N = {"cuda": (1, 4, 8, 32, 64, 128), "cpu": (1, 4, 8, 16)}
QUICK_N = {"cuda": (1, 8, 64), "cpu": (1, 8)}
MAX_INDEX_SETS = 16


class Skip(Exception):
    """A size or method that cannot run here, with the reason shown in the table."""


def cache_bytes(device: torch.device) -> int:
    """The last-level cache: the GPU's L2, or the CPU's largest cache level."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).L2_cache_size
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip()
        sizes.append(int(text[:-1]) * 1024 if text.endswith("K") else int(text))
    return max(sizes, default=32 * MIB)


def free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 62


def fill_random(tensor: torch.Tensor, generator: torch.Generator) -> None:
    """Random normal values, a 1 MiB random block repeated: memory-speed for gigabytes."""
    flat = tensor.view(-1)
    block = torch.randn(min(flat.numel(), MIB // 4), generator=generator).to(tensor.dtype)
    block = block.to(tensor.device)
    whole = flat.numel() // block.numel() * block.numel()
    flat[:whole].view(-1, block.numel()).copy_(block.expand(whole // block.numel(), -1))
    flat[whole:].copy_(block[: flat.numel() - whole])


@dataclasses.dataclass
class CallIndices:
    """One call's indices: the commit, the track copies (or None) and the caches it reads."""

    slots: torch.Tensor
    steps: torch.Tensor
    rows: torch.Tensor | None  # None: the request's position in the batch
    track_slots: torch.Tensor | None
    track_steps: torch.Tensor | None
    caches: list[torch.Tensor]

    def commit_sets(self):
        """(slots, steps) of the commit and of the track copies."""
        sets = [(self.slots, self.steps)]
        if self.track_slots is not None:
            sets.append((self.track_slots, self.track_steps))
        return sets


def window_cache(layers: int, rows: int, steps: int, kind: StateKind, conv_kernel: int,
                 device, generator) -> torch.Tensor:
    """SGLang's de-duplicated conv-window cache: [L, R, T, conv_dim, K - 1], step t's window
    being columns t .. t + K - 2 of one [conv_dim, T + K - 2] buffer per row."""
    conv_dim, width = kind.entry
    assert width == conv_kernel - 1
    buffer = torch.empty(layers, rows, conv_dim, steps + width - 1,
                         dtype=kind.intermediate_dtype, device=device)
    fill_random(buffer, generator)
    stride = buffer.stride()
    return buffer.as_strided((layers, rows, steps, conv_dim, width),
                             (stride[0], stride[1], stride[3], stride[2], stride[3]))


class Workload:
    """Pools, caches and index sets for one preset and batch size N, of which `live` entries
    apply (the rest are the padding of a CUDA-graph batch: slot and step -1). Index set i uses its
    own slots and rows (or, batch-indexed, its own caches), so consecutive calls touch different
    memory."""

    def __init__(self, preset: Preset, num_entries: int, device: torch.device, *,
                 track: bool = False, live: int | None = None, seed: int = 0):
        self.preset = preset
        self.num_entries = num_entries
        self.live = num_entries if live is None else min(live, num_entries)
        self.device = device
        track = track or preset.sglang_layout
        # With track copies, half the live requests (rounded up) also copy a step into a slot.
        self.num_tracked = (self.live + 1) // 2 if track else 0
        self.bytes = (self.live + self.num_tracked) * preset.bytes_per_entry()
        self.sets = max(1, min(MAX_INDEX_SETS, math.ceil(4 * cache_bytes(device) /
                                                         max(self.bytes, 1))))
        capacity = num_entries * self.sets * (2 if track else 1)
        rows_per_set = num_entries + 1 if preset.sglang_layout else num_entries
        pool_bytes = capacity * preset.layers * sum(
            math.prod(k.entry) * k.state_dtype.itemsize for k in preset.kinds)
        cache_bytes_needed = rows_per_set * self.sets * preset.steps * preset.layers * sum(
            math.prod(k.entry) * k.intermediate_dtype.itemsize for k in preset.kinds)
        # Pools, caches, the copy roofline's buffers and advanced indexing's temporary gather.
        needed = pool_bytes + cache_bytes_needed + self.sets * self.bytes + self.bytes
        if needed > 0.9 * free_bytes(device):
            raise Skip(f"needs {needed / 2**30:.1f} GiB, {free_bytes(device) / 2**30:.1f} free")
        generator = torch.Generator().manual_seed(seed)
        self.states = [torch.zeros(preset.layers, capacity, *kind.entry, dtype=kind.state_dtype,
                                   device=device) for kind in preset.kinds]
        shared_caches = None if preset.sglang_layout else self._caches(
            num_entries * self.sets, generator)
        slot_order = torch.randperm(capacity, generator=generator).view(self.sets, -1, num_entries)
        padding = torch.arange(num_entries) >= self.live
        self.index_sets = []
        for i in range(self.sets):
            steps = torch.randint(0, preset.steps, (num_entries,), generator=generator)
            slots = slot_order[i, 0].masked_fill(padding, -1)
            track_slots = track_steps = None
            if track:
                track_steps = torch.randint(0, preset.steps, (num_entries,), generator=generator)
                untracked = torch.randperm(self.live, generator=generator)[self.num_tracked:]
                track_steps[untracked] = -1
                track_steps[padding] = -1
                track_slots = slot_order[i, 1].masked_fill(padding, -1)
            if preset.sglang_layout:
                rows, caches = None, self._caches(rows_per_set, generator)
            else:
                rows, caches = torch.arange(num_entries) + i * num_entries, shared_caches
            moved = [None if t is None else t.to(device)
                     for t in (slots, steps.masked_fill(padding, -1), rows, track_slots,
                               track_steps)]
            self.index_sets.append(CallIndices(*moved, caches))
        self._copy_buffers = None

    def _caches(self, rows: int, generator) -> list[torch.Tensor]:
        caches = []
        for kind in self.preset.kinds:
            if self.preset.sglang_layout and kind.name == "conv":
                caches.append(window_cache(self.preset.layers, rows, self.preset.steps, kind,
                                           self.preset.conv_kernel, self.device, generator))
                continue
            cache = torch.empty(self.preset.layers, rows, self.preset.steps, *kind.entry,
                                dtype=kind.intermediate_dtype, device=self.device)
            fill_random(cache, generator)
            caches.append(cache)
        return caches

    def copy_buffers(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Source and destination of the roofline copy: as many bytes read and written."""
        if self._copy_buffers is None:
            half = max(self.bytes // 2, 1)
            self._copy_buffers = [
                (torch.ones(half, dtype=torch.uint8, device=self.device),
                 torch.zeros(half, dtype=torch.uint8, device=self.device))
                for _ in range(self.sets)
            ]
        return self._copy_buffers[i]

    def check(self, i: int) -> None:
        """Raises unless the pools hold index set i's applied copies exactly."""
        index_set = self.index_sets[i]
        rows = index_set.rows
        if rows is None:
            rows = torch.arange(self.num_entries, device=self.device)
        for slots, steps in index_set.commit_sets():
            applied = (steps >= 0) & (slots >= 0)
            for state, cache in zip(self.states, index_set.caches):
                expected = cache[:, rows[applied], steps[applied]].to(state.dtype)
                if not torch.equal(state[:, slots[applied]], expected):
                    raise AssertionError("result differs from the reference gather")

    def clear(self, i: int) -> None:
        for slots, _ in self.index_sets[i].commit_sets():
            for state in self.states:
                state[:, slots[slots >= 0]] = 0


def _ours(w: Workload, i: int) -> None:
    s = w.index_sets[i]
    mamba_state_ext.commit_verified_states(w.states, s.caches, s.slots, s.steps, src_rows=s.rows,
                                           track_indices=s.track_slots,
                                           steps_to_track=s.track_steps)


def _loop(w: Workload, i: int) -> None:
    s = w.index_sets[i]
    reference.loop_update(w.states, s.caches, s.slots, s.steps, s.rows,
                          track_slots=s.track_slots, track_steps=s.track_steps)


def _vectorized(w: Workload, i: int) -> None:
    s = w.index_sets[i]
    reference.vectorized_update(w.states, s.caches, s.slots, s.steps, s.rows,
                                track_slots=s.track_slots, track_steps=s.track_steps)


_sglang_kernels = None


def _sglang(w: Workload, i: int) -> None:
    """SGLang 0.5.23's own scatter_mamba_states_after_mtp_verify (CUDA only)."""
    s = w.index_sets[i]
    ssm_pool, conv_pool = w.states
    ssm_cache, conv_cache = s.caches
    caches = types.SimpleNamespace(temporal=ssm_pool, intermediate_ssm=ssm_cache,
                                   conv=[conv_pool], intermediate_conv_window=[conv_cache])
    _sglang_kernels.scatter_mamba_states_after_mtp_verify(
        caches, s.slots, s.steps, s.track_slots, s.track_steps, s.rows)


def _copy(w: Workload, i: int) -> None:
    source, destination = w.copy_buffers(i)
    destination.copy_(source)


def _empty_launch(w: Workload, i: int) -> None:
    torch.cuda._sleep(0)


def load_sglang(device: torch.device, wheel: str | None) -> str | None:
    """Loads SGLang's kernels for the `sglang` method; returns why it cannot run, or None."""
    global _sglang_kernels
    if device.type != "cuda":
        return "sglang: its kernels refuse CPU tensors (CUDA only)"
    try:
        _sglang_kernels = sglang_kernels.load_scatter_kernels(wheel)
    except sglang_kernels.Unavailable as error:
        return f"sglang: not loaded: {error}"
    return None


# name -> (call, writes the pools). "sglang" and "empty_launch" run on CUDA only.
METHODS: dict[str, tuple[Callable[[Workload, int], None], bool]] = {
    "loop": (_loop, True),
    "vectorized": (_vectorized, True),
    "sglang": (_sglang, True),
    "mamba_state": (_ours, True),
    "copy": (_copy, False),
    "empty_launch": (_empty_launch, False),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepare(call, workload: Workload, writes_pools: bool, budget_s: float):
    """One untimed call first (Triton compiles, buffers are allocated), then a call whose result
    is checked; returns (seconds of that call, seconds the host took to issue it, extra peak MiB
    it allocated on CUDA)."""
    device = workload.device
    call(workload, 0)
    if writes_pools:
        workload.clear(0)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    started = time.perf_counter()
    call(workload, 0)
    issued = time.perf_counter() - started
    synchronize(device)
    seconds = time.perf_counter() - started
    extra_mib = (torch.cuda.max_memory_allocated(device) - base) / MIB \
        if device.type == "cuda" else None
    if writes_pools:
        workload.check(0)
    if seconds * 3 > budget_s:
        raise Skip(f"skipped: one call takes {seconds:.1f} s (budget {budget_s:.0f} s)")
    return seconds, issued, extra_mib


def sleep_cycles_per_second(device: torch.device) -> float:
    """The rate of the GPU's clock that torch.cuda._sleep counts, measured."""
    cycles = 10_000_000
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(cycles // 10)  # the clock ramps up
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    synchronize(device)
    return cycles / (start.elapsed_time(end) / 1e3)


def time_interleaved(calls: dict, workload: Workload, reps: dict, warmup: int,
                     issue_seconds: dict) -> tuple[dict, dict]:
    """Median seconds per call of each method, and median seconds the host took to issue it.
    Methods take turns call by call, so that a machine whose bandwidth drifts (a shared VM) slows
    them alike; consecutive calls use different index sets, so that one method does not find the
    last one's data in cache. On CUDA a sleep kernel runs first, longer than the host takes to
    issue the call (issue_seconds, twice over), so that the whole call is queued before its start
    event runs: the events bracket the GPU's work alone, and the issue time is reported apart."""
    device = workload.device
    order = list(calls)
    call_index = 0
    for _ in range(warmup):
        for name in order:
            calls[name](workload, call_index % workload.sets)
            call_index += 1
    synchronize(device)
    if device.type == "cuda":
        rate = sleep_cycles_per_second(device)
        sleep = {name: int(rate * (2 * issue_seconds[name] + 50e-6)) for name in order}
    samples = {name: [] for name in order}
    issue = {name: [] for name in order}
    for round_index in range(max(reps.values())):
        for name in order:
            if round_index >= reps[name]:
                continue
            index_set = call_index % workload.sets
            call_index += 1
            if device.type == "cuda":
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                torch.cuda._sleep(sleep[name])
                start.record()
                started = time.perf_counter()
                calls[name](workload, index_set)
                issue[name].append(time.perf_counter() - started)
                end.record()
                samples[name].append((start, end))
            else:
                started = time.perf_counter()
                calls[name](workload, index_set)
                samples[name].append(time.perf_counter() - started)
    synchronize(device)
    if device.type == "cuda":
        samples = {name: [start.elapsed_time(end) / 1e3 for start, end in events]
                   for name, events in samples.items()}
    medians = {name: statistics.median(times) for name, times in samples.items()}
    issue_medians = {name: statistics.median(times) if times else None
                     for name, times in issue.items()}
    return medians, issue_medians


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    model = platform.processor() or platform.machine()
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} CPUs"


def progress(message: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\033[K{message}")
    else:
        sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run_preset(preset: Preset, cases, methods, device, *, reps, warmup, budget_s, track):
    """cases: (N, live) pairs. Returns results (dicts of the JSON shape), notes (skipped sizes and
    methods) and failures (methods whose result differed from the reference; not timed)."""
    results, notes, failures = [], [], []
    for num_entries, live in cases:
        label = f"N={num_entries}" + (f" ({live} live)" if live < num_entries else "")
        try:
            workload = Workload(preset, num_entries, device, track=track, live=live)
        except Skip as skip:
            notes.append(f"{label}: {skip}")
            continue
        calls, extra, method_reps, issue_seconds = {}, {}, {}, {}
        for method in methods:
            call, writes_pools = METHODS[method]
            progress(f"[{preset.name}] {label} {method}: checking")
            try:
                seconds, issue_seconds[method], extra[method] = prepare(call, workload,
                                                                        writes_pools, budget_s)
            except Skip as skip:
                notes.append(f"{label} {method}: {skip}")
                continue
            except AssertionError as error:
                failures.append(f"{label} {method}: FAILED: {error}")
                continue
            calls[method] = call
            method_reps[method] = max(3, min(reps, int(budget_s / max(seconds, 1e-9))))
        if calls:
            progress(f"[{preset.name}] {label}: timing {', '.join(calls)}")
            medians, issued = time_interleaved(calls, workload, method_reps, warmup,
                                               issue_seconds)
        for method in calls:
            results.append({
                "preset": preset.name, "n": num_entries, "live": workload.live, "method": method,
                "median_us": medians[method] * 1e6,
                "host_us": None if issued[method] is None else issued[method] * 1e6,
                "bytes": workload.bytes,
                "gbps": workload.bytes / medians[method] / 1e9, "extra_mib": extra[method],
            })
        del workload
        if device.type == "cuda":
            torch.cuda.empty_cache()
    progress("")
    return results, notes, failures


def format_table(preset: Preset, results, notes) -> str:
    kinds = ", ".join(kind.describe() for kind in preset.kinds)
    layout = "; SGLang layouts (window conv cache, batch rows, track copies)" \
        if preset.sglang_layout else ""
    lines = [
        f"preset {preset.name}: {preset.layers} layers, {kinds}, T={preset.steps}; "
        f"{preset.bytes_per_entry() / MIB:.2f} MiB read+written per entry{layout}",
        f"{'N':>8}  {'method':<13}{'median us':>12}{'host us':>9}{'GB/s':>9}{'% copy':>8}"
        f"{'vs vectorized':>15}{'vs sglang':>11}{'extra MiB':>11}",
    ]
    by_key = {(r["n"], r["live"], r["method"]): r for r in results}
    for r in results:
        host = f"{r['host_us']:.1f}" if r["host_us"] is not None else "-"
        if r["method"] == "empty_launch":
            lines.append(f"{r['n']:>8}  {r['method']:<13}{r['median_us']:>12.1f}{host:>9}")
            continue
        same = lambda method: by_key.get((r["n"], r["live"], method))  # noqa: E731
        copy, vectorized, sglang = same("copy"), same("vectorized"), same("sglang")
        percent = f"{100 * r['gbps'] / copy['gbps']:.0f}%" if copy else "-"
        speedup = f"{vectorized['median_us'] / r['median_us']:.2f}x" if vectorized else "-"
        vs_sglang = f"{sglang['median_us'] / r['median_us']:.2f}x" if sglang else "-"
        extra = f"{r['extra_mib']:.1f}" if r["extra_mib"] is not None else "-"
        n = f"{r['n']}/{r['live']}" if r["live"] < r["n"] else str(r["n"])
        lines.append(f"{n:>8}  {r['method']:<13}{r['median_us']:>12.1f}{host:>9}{r['gbps']:>9.1f}"
                     f"{percent:>8}{speedup:>15}{vs_sglang:>11}{extra:>11}")
    lines += [f"  note: {note}" for note in notes]
    return "\n".join(lines)


def target_lines(preset: Preset, results, device_type: str) -> list[str]:
    """The project's performance targets (../shared/DESIGN.md) against this run's medians (same
    run, same device). Each line: what, measured, the bound, met or MISSED."""
    by_key = {(r["n"], r["live"], r["method"]): r["median_us"] for r in results}
    sizes = sorted({r["n"] for r in results if r["live"] == r["n"]})
    qwen3 = preset.name.removeprefix("sglang-").startswith("qwen3-next")
    tp4 = preset.name.removeprefix("sglang-").startswith("qwen3-next-tp4")

    def time(n, method, live=None):
        return by_key.get((n, n if live is None else live, method))

    checks = []  # (what, measured, bound, higher is better)

    def ratio(what, numerator, denominator, bound, higher=True):
        measured = None if numerator is None or denominator is None else numerator / denominator
        checks.append((what, measured, bound, higher))

    copy_share = 0.9 if preset.sglang_layout else 0.95
    if device_type == "cuda" and tp4:
        ratio("N=64: GB/s vs copy", time(64, "copy"), time(64, "mamba_state"), copy_share)
        if 1 in sizes:
            floor = None if time(1, "copy") is None or time(1, "empty_launch") is None \
                else time(1, "copy") + time(1, "empty_launch")
            ratio("N=1: time vs copy + empty launch", time(1, "mamba_state"), floor, 1.2,
                  higher=False)
        for n in sizes:
            ratio(f"N={n}: speedup vs sglang", time(n, "sglang"), time(n, "mamba_state"),
                  1.3 if n <= 8 else 1.0)
        ratio("N=64: speedup vs vectorized", time(64, "vectorized"), time(64, "mamba_state"), 2.0)
        ratio("N=8: speedup vs vectorized", time(8, "vectorized"), time(8, "mamba_state"), 5.0)
        for n, live in sorted({(r["n"], r["live"]) for r in results if r["live"] < r["n"]}):
            ratio(f"N={n} padded, {live} live: time vs {live} alone",
                  time(n, "mamba_state", live), time(live, "mamba_state"), 1.05, higher=False)
    elif device_type == "cpu" and qwen3:
        for n in sizes:
            ratio(f"N={n}: GB/s vs copy", time(n, "copy"), time(n, "mamba_state"), copy_share)
    lines = []
    for what, measured, bound, higher in checks:
        sign = ">=" if higher else "<="
        if measured is None:
            lines.append(f"  target {what} {sign} {bound:g}: not measured in this run")
        else:
            met = measured >= bound if higher else measured <= bound
            lines.append(f"  target {what} {sign} {bound:g}: {measured:.2f} "
                         f"{'met' if met else 'MISSED'}")
    return lines


def plot(results, path: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"--plot {path}: matplotlib is not installed (pip install matplotlib); no plot"
    presets = sorted({r["preset"] for r in results})
    figure, axes = plt.subplots(1, len(presets), figsize=(6 * len(presets), 4.5), squeeze=False)
    for axis, preset in zip(axes[0], presets):
        for method in METHODS:
            points = [(r["n"], r["gbps"]) for r in results if r["preset"] == preset
                      and r["method"] == method and r["live"] == r["n"]]
            if points:
                axis.plot(*zip(*points), marker="o", label=method)
        axis.set(xscale="log", xlabel="N (entries)", ylabel="effective GB/s", title=preset)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return f"plot written to {path}"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m mamba_state_ext.bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", nargs="+", default=["qwen3-next-tp4"], choices=PRESETS)
    parser.add_argument("--n", nargs="+", type=int, help="batch sizes (default: by device)")
    parser.add_argument("--padded", type=int, metavar="LIVE",
                        help="also run each N above LIVE as a CUDA-graph batch of N entries of "
                             "which LIVE apply (the rest slot and step -1), against LIVE alone")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--layers", type=int, help="override the preset's layer count")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--reps", type=int, help="timed calls per method (default 50, quick 5)")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and calls")
    parser.add_argument("--track", action="store_true",
                        help="time the full MTP-verify commit: every request's accepted state "
                             "plus track copies for half of them (the SGLang presets always do)")
    parser.add_argument("--sglang-wheel", metavar="PATH",
                        help=f"the sglang {sglang_kernels.VERSION} wheel for the sglang method "
                             f"(default: ${sglang_kernels.WHEEL_ENV}, else build/wheels/)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of GB/s against N")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    device = torch.device(args.device, torch.cuda.current_device()) if args.device == "cuda" \
        else torch.device("cpu")
    sizes = sorted(set(args.n or (QUICK_N if args.quick else DEFAULT_N)[device.type]))
    cases = [(n, n) for n in sorted(set(sizes) | ({args.padded} if args.padded else set()))]
    if args.padded:
        cases += [(n, args.padded) for n in sizes if n > args.padded]
    methods = list(args.methods)
    skipped_methods = []
    if "sglang" in methods:
        why = load_sglang(device, args.sglang_wheel)
        if why:
            methods.remove("sglang")
            skipped_methods.append(why)
    if "empty_launch" in methods and device.type != "cuda":
        methods.remove("empty_launch")
    reps = args.reps or (5 if args.quick else 50)
    warmup = 1 if args.quick else 5
    budget_s = 2.0 if args.quick else 10.0
    header = {
        "device": device.type, "card": device_description(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "date": datetime.date.today().isoformat(),
    }
    print(f"mamba_state_ext.bench: {header['device']} ({header['card']}), torch {header['torch']}, "
          f"{header['threads']} threads, {header['date']}")
    print(f"backend: {mamba_state_ext.backend()}")
    all_results, all_failures = [], []
    for name in args.preset:
        preset = PRESETS[name]
        if args.layers:
            preset = dataclasses.replace(preset, name=f"{preset.name}-{args.layers}layers",
                                         layers=args.layers)
        if args.track and not preset.sglang_layout:
            preset = dataclasses.replace(preset, name=f"{preset.name}+track")
        results, notes, failures = run_preset(preset, cases, methods, device, reps=reps,
                                              warmup=warmup, budget_s=budget_s, track=args.track)
        print()
        print(format_table(preset, results, skipped_methods + notes + failures))
        print("\n".join(target_lines(preset, results, device.type)))
        all_results += results
        all_failures += failures
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**header, "results": all_results}, indent=1) + "\n")
        print(f"\nresults written to {args.json}")
    if args.plot:
        print(plot(all_results, args.plot))
    for failure in all_failures:
        print(failure, file=sys.stderr)
    return 1 if all_failures else 0


if __name__ == "__main__":
    sys.exit(main())
