"""Checking each method once, then timing the methods in turns."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from .methods import METHODS
from .presets import MIB, Preset
from .workload import Skip, Workload


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
    extra_mib = (
        (torch.cuda.max_memory_allocated(device) - base) / MIB if device.type == "cuda" else None
    )
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


def sleep_cycles_covering(issue_seconds: float, cycles_per_second: float) -> int:
    """A sleep kernel's length that outlasts the host's issue of a call (twice over, plus 50 us),
    so that the whole call is queued before the GPU reaches its start event."""
    return int(cycles_per_second * (2 * issue_seconds + 50e-6))


def time_interleaved(
    calls: dict, workload: Workload, reps: dict, warmup: int, issue_seconds: dict
) -> tuple[dict, dict]:
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
        sleep = {name: sleep_cycles_covering(issue_seconds[name], rate) for name in order}
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
        samples = {
            name: [start.elapsed_time(end) / 1e3 for start, end in events]
            for name, events in samples.items()
        }
    medians = {name: statistics.median(times) for name, times in samples.items()}
    issue_medians = {
        name: statistics.median(times) if times else None for name, times in issue.items()
    }
    return medians, issue_medians


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    model = platform.processor() or platform.machine()
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
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
                seconds, issue_seconds[method], extra[method] = prepare(
                    call, workload, writes_pools, budget_s
                )
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
            medians, issued = time_interleaved(calls, workload, method_reps, warmup, issue_seconds)
        for method in calls:
            results.append(
                {
                    "preset": preset.name,
                    "n": num_entries,
                    "live": workload.live,
                    "method": method,
                    "median_us": medians[method] * 1e6,
                    "host_us": None if issued[method] is None else issued[method] * 1e6,
                    "bytes": workload.bytes,
                    "gbps": workload.bytes / medians[method] / 1e9,
                    "extra_mib": extra[method],
                }
            )
        del workload
        if device.type == "cuda":
            torch.cuda.empty_cache()
    progress("")
    return results, notes, failures
