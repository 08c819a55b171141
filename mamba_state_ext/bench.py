"""How much faster than what a server does now, on real shapes: ``python -m mamba_state_ext.bench``.

Every method commits the same entries into the same pools (all entries applied, distinct slots),
is first checked bit for bit against a direct gather, then timed: warm-up, then the median of
many calls (CUDA events on the GPU, ``time.perf_counter`` on the CPU), rotating among index sets
that together touch at least four times the last-level cache, so that repeats are not served from
it. Effective GB/s counts the bytes each call must read and write (intermediates read once, pools
written once) over the median time. ``copy`` is a plain ``copy_`` of as many bytes: the roofline.
A result's ``extra_mib`` is the peak memory one call allocates (CUDA only; None on the CPU).
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
from collections.abc import Callable
from pathlib import Path

import torch

import mamba_state_ext
from mamba_state_ext import reference

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
    kinds: tuple[StateKind, ...]
    steps: int = 4  # draft tokens T

    def bytes_per_entry(self) -> int:
        return self.layers * sum(kind.bytes_per_layer() for kind in self.kinds)


def qwen3_next(tp: int) -> Preset:
    """Qwen3-Next-80B-A3B at tensor parallelism tp: 36 linear-attention layers, SSM state
    [32/tp, 128, 128] float32, conv window [8192/tp, 3] bfloat16."""
    return Preset(f"qwen3-next-tp{tp}", 36, (
        StateKind("ssm", (32 // tp, 128, 128), torch.float32, torch.float32),
        StateKind("conv", (8192 // tp, 3), torch.bfloat16, torch.bfloat16),
    ))


PRESETS = {preset.name: preset for preset in (
    qwen3_next(4),
    qwen3_next(1),
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


class Workload:
    """Pools, intermediates and index sets for one preset and batch size N. Index set i uses its
    own slots and rows, so consecutive calls touch different memory."""

    def __init__(self, preset: Preset, num_entries: int, device: torch.device, *,
                 track: bool = False, seed: int = 0):
        self.preset = preset
        self.num_entries = num_entries
        self.device = device
        # With track copies, half the requests (rounded up) also copy a step into a track slot.
        self.num_tracked = (num_entries + 1) // 2 if track else 0
        self.bytes = (num_entries + self.num_tracked) * preset.bytes_per_entry()
        self.sets = max(1, min(MAX_INDEX_SETS, math.ceil(4 * cache_bytes(device) / self.bytes)))
        capacity = num_entries * self.sets * (2 if track else 1)
        pool_bytes = capacity * preset.layers * sum(
            math.prod(k.entry) * k.state_dtype.itemsize for k in preset.kinds)
        cache_bytes_needed = capacity * preset.steps * preset.layers * sum(
            math.prod(k.entry) * k.intermediate_dtype.itemsize for k in preset.kinds)
        # Pools, caches, the copy roofline's buffers and the seed's temporary gather.
        needed = pool_bytes + cache_bytes_needed + self.sets * self.bytes + self.bytes
        if needed > 0.9 * free_bytes(device):
            raise Skip(f"needs {needed / 2**30:.1f} GiB, {free_bytes(device) / 2**30:.1f} free")
        generator = torch.Generator().manual_seed(seed)
        self.states, self.intermediates = [], []
        for kind in preset.kinds:
            self.states.append(torch.zeros(preset.layers, capacity, *kind.entry,
                                           dtype=kind.state_dtype, device=device))
            intermediate = torch.empty(preset.layers, capacity, preset.steps, *kind.entry,
                                       dtype=kind.intermediate_dtype, device=device)
            fill_random(intermediate, generator)
            self.intermediates.append(intermediate)
        slot_order = torch.randperm(capacity, generator=generator).view(self.sets, -1, num_entries)
        rows = torch.arange(num_entries * self.sets).view(self.sets, num_entries)
        self.index_sets = []  # per set: the commit's (slots, steps, rows), then the track copies'
        for i in range(self.sets):
            steps = torch.randint(0, preset.steps, (num_entries,), generator=generator)
            sets = [(slot_order[i, 0], steps, rows[i])]
            if track:
                track_steps = torch.randint(0, preset.steps, (num_entries,), generator=generator)
                untracked = torch.randperm(num_entries, generator=generator)[self.num_tracked:]
                track_steps[untracked] = -1
                sets.append((slot_order[i, 1], track_steps, rows[i]))
            self.index_sets.append([tuple(t.to(device) for t in entries) for entries in sets])
        self._copy_buffers = None

    def copy_buffers(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Source and destination of the roofline copy: as many bytes read and written."""
        if self._copy_buffers is None:
            half = self.bytes // 2
            self._copy_buffers = [
                (torch.ones(half, dtype=torch.uint8, device=self.device),
                 torch.zeros(half, dtype=torch.uint8, device=self.device))
                for _ in range(self.sets)
            ]
        return self._copy_buffers[i]

    def check(self, i: int) -> None:
        """Raises unless the pools hold index set i's entries exactly."""
        for slots, steps, rows in self.index_sets[i]:
            applied = steps >= 0
            slots, steps, rows = slots[applied], steps[applied], rows[applied]
            for state, intermediate in zip(self.states, self.intermediates):
                expected = intermediate[:, rows, steps].to(state.dtype)
                if not torch.equal(state[:, slots], expected):
                    raise AssertionError("result differs from the reference gather")

    def clear(self, i: int) -> None:
        for slots, _, _ in self.index_sets[i]:
            for state in self.states:
                state[:, slots] = 0


def _ours(w: Workload, i: int) -> None:
    (slots, steps, rows), *track = w.index_sets[i]
    if track:
        (track_slots, track_steps, _), = track
        mamba_state_ext.commit_verified_states(w.states, w.intermediates, slots, steps,
                                               src_rows=rows, track_indices=track_slots,
                                               steps_to_track=track_steps)
    else:
        mamba_state_ext.update(w.states, w.intermediates, slots, steps, rows, check=False)


def _one_launch(w: Workload, i: int) -> None:
    """The commit and the track copies as one launch, on concatenated index sets."""
    sets = w.index_sets[i]
    slots, steps, rows = (torch.cat(parts) for parts in zip(*sets))
    mamba_state_ext.update(w.states, w.intermediates, slots, steps, rows, check=False)


def _loop(w: Workload, i: int) -> None:
    for entries in w.index_sets[i]:
        reference.loop_update(w.states, w.intermediates, *entries)


def _vectorized(w: Workload, i: int) -> None:
    for entries in w.index_sets[i]:
        reference.vectorized_update(w.states, w.intermediates, *entries)


def _triton(w: Workload, i: int) -> None:
    from mamba_state_ext import triton_baseline

    for entries in w.index_sets[i]:
        triton_baseline.masked_scatter_update(w.states, w.intermediates, *entries)


def _copy(w: Workload, i: int) -> None:
    source, destination = w.copy_buffers(i)
    destination.copy_(source)


def triton_available(device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    return importlib.util.find_spec("triton") is not None


# name -> (call, writes the pools). "one_launch" runs with --track only.
METHODS: dict[str, tuple[Callable[[Workload, int], None], bool]] = {
    "loop": (_loop, True),
    "vectorized": (_vectorized, True),
    "triton": (_triton, True),
    "mamba_state": (_ours, True),
    "one_launch": (_one_launch, True),
    "copy": (_copy, False),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepare(call, workload: Workload, writes_pools: bool, budget_s: float):
    """Checks one call's result, then returns (seconds of that call, extra peak MiB on CUDA)."""
    device = workload.device
    if writes_pools:
        workload.clear(0)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    started = time.perf_counter()
    call(workload, 0)
    synchronize(device)
    seconds = time.perf_counter() - started
    extra_mib = (torch.cuda.max_memory_allocated(device) - base) / MIB \
        if device.type == "cuda" else None
    if writes_pools:
        workload.check(0)
    if seconds * 3 > budget_s:
        raise Skip(f"skipped: one call takes {seconds:.1f} s (budget {budget_s:.0f} s)")
    return seconds, extra_mib


def time_interleaved(calls: dict, workload: Workload, reps: dict, warmup: int) -> dict:
    """Median seconds per call of each method. Methods take turns call by call, so that a machine
    whose bandwidth drifts (a shared VM) slows them alike; consecutive calls use different index
    sets, so that one method does not find the last one's data in cache."""
    device = workload.device
    order = list(calls)
    call_index = 0
    for _ in range(warmup):
        for name in order:
            calls[name](workload, call_index % workload.sets)
            call_index += 1
    synchronize(device)
    samples = {name: [] for name in order}
    for round_index in range(max(reps.values())):
        for name in order:
            if round_index >= reps[name]:
                continue
            index_set = call_index % workload.sets
            call_index += 1
            if device.type == "cuda":
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                calls[name](workload, index_set)
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
    return {name: statistics.median(times) for name, times in samples.items()}


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


def run_preset(preset: Preset, sizes, methods, device, *, reps, warmup, budget_s, track):
    """Results (dicts of the JSON shape), notes (skipped sizes and methods) and failures
    (methods whose result differed from the reference; they are not timed)."""
    results, notes, failures = [], [], []
    for num_entries in sizes:
        try:
            workload = Workload(preset, num_entries, device, track=track)
        except Skip as skip:
            notes.append(f"N={num_entries}: {skip}")
            continue
        calls, extra, method_reps = {}, {}, {}
        for method in methods:
            call, writes_pools = METHODS[method]
            progress(f"[{preset.name}] N={num_entries} {method}: checking")
            try:
                seconds, extra[method] = prepare(call, workload, writes_pools, budget_s)
            except Skip as skip:
                notes.append(f"N={num_entries} {method}: {skip}")
                continue
            except AssertionError as error:
                failures.append(f"N={num_entries} {method}: FAILED: {error}")
                continue
            calls[method] = call
            method_reps[method] = max(3, min(reps, int(budget_s / max(seconds, 1e-9))))
        if calls:
            progress(f"[{preset.name}] N={num_entries}: timing {', '.join(calls)}")
            medians = time_interleaved(calls, workload, method_reps, warmup)
        for method in calls:
            results.append({
                "preset": preset.name, "n": num_entries, "method": method,
                "median_us": medians[method] * 1e6, "bytes": workload.bytes,
                "gbps": workload.bytes / medians[method] / 1e9, "extra_mib": extra[method],
            })
        del workload
        if device.type == "cuda":
            torch.cuda.empty_cache()
    progress("")
    return results, notes, failures


def format_table(preset: Preset, results, notes) -> str:
    kinds = ", ".join(kind.describe() for kind in preset.kinds)
    lines = [
        f"preset {preset.name}: {preset.layers} layers, {kinds}, T={preset.steps}; "
        f"{preset.bytes_per_entry() / MIB:.2f} MiB read+written per entry",
        f"{'N':>5}  {'method':<12}{'median us':>12}{'GB/s':>9}{'% copy':>8}"
        f"{'vs vectorized':>15}{'extra MiB':>11}",
    ]
    by_key = {(r["n"], r["method"]): r for r in results}
    for r in results:
        copy = by_key.get((r["n"], "copy"))
        vectorized = by_key.get((r["n"], "vectorized"))
        percent = f"{100 * r['gbps'] / copy['gbps']:.0f}%" if copy else "-"
        speedup = f"{vectorized['median_us'] / r['median_us']:.2f}x" if vectorized else "-"
        extra = f"{r['extra_mib']:.1f}" if r["extra_mib"] is not None else "-"
        lines.append(f"{r['n']:>5}  {r['method']:<12}{r['median_us']:>12.1f}{r['gbps']:>9.1f}"
                     f"{percent:>8}{speedup:>15}{extra:>11}")
    lines += [f"  note: {note}" for note in notes]
    return "\n".join(lines)


def target_lines(preset: Preset, results, device_type: str) -> list[str]:
    """The project's performance targets, against this run's medians (same run, same device)."""
    by_key = {(r["n"], r["method"]): r for r in results}

    def ratio(n, faster, slower, by="time"):
        a, b = by_key.get((n, faster)), by_key.get((n, slower))
        if a is None or b is None:
            return None
        return b["median_us"] / a["median_us"] if by == "time" else a["gbps"] / b["gbps"]

    sizes = sorted({r["n"] for r in results})
    checks = []  # (what, measured, at least)
    if device_type == "cuda" and preset.name == "qwen3-next-tp4":
        checks.append(("N=64: GB/s vs copy", ratio(64, "mamba_state", "copy", by="gbps"), 0.9))
        checks.append(("N=64: speedup vs vectorized", ratio(64, "mamba_state", "vectorized"), 2.0))
        checks.append(("N=8: speedup vs vectorized", ratio(8, "mamba_state", "vectorized"), 5.0))
        for n in sizes:
            if n >= 32:
                checks.append((f"N={n}: speedup vs triton", ratio(n, "mamba_state", "triton"), 1.0))
            elif n <= 4:
                checks.append((f"N={n}: speedup vs triton", ratio(n, "mamba_state", "triton"), 1.3))
    elif device_type == "cpu" and sizes:
        largest = sizes[-1]
        checks.append((f"N={largest}: GB/s vs copy",
                       ratio(largest, "mamba_state", "copy", by="gbps"), 0.8))
        checks.append((f"N={largest}: speedup vs vectorized",
                       ratio(largest, "mamba_state", "vectorized"), 2.0))
    lines = []
    for what, measured, least in checks:
        if measured is None:
            lines.append(f"  target {what} >= {least:g}: not measured in this run")
        else:
            verdict = "met" if measured >= least else "MISSED"
            lines.append(f"  target {what} >= {least:g}: {measured:.2f} {verdict}")
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
            points = [(r["n"], r["gbps"]) for r in results
                      if r["preset"] == preset and r["method"] == method]
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
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--layers", type=int, help="override the preset's layer count")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--reps", type=int, help="timed calls per method (default 50, quick 5)")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and calls")
    parser.add_argument("--track", action="store_true",
                        help="time the full MTP-verify commit: every request's accepted state "
                             "plus track copies for half of them (commit_verified_states)")
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
    sizes = args.n or (QUICK_N if args.quick else DEFAULT_N)[device.type]
    methods = [m for m in args.methods if (m != "triton" or triton_available(device))
               and (m != "one_launch" or args.track)]
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
        if args.track:
            preset = dataclasses.replace(preset, name=f"{preset.name}+track")
        results, notes, failures = run_preset(preset, sizes, methods, device, reps=reps,
                                              warmup=warmup, budget_s=budget_s, track=args.track)
        print()
        print(format_table(preset, results, notes + failures))
        if not args.track:  # the targets are the operator's, on the plain presets
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
