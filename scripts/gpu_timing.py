#!/usr/bin/env python
"""Where one call's time goes on the GPU: the benchmark's workloads, each method timed three ways.

- idle: the GPU idle before the call, CUDA events around it (so the host's issue time counts, as
  it does for one commit on an otherwise idle GPU);
- device: the stream kept busy by a sleep kernel queued first, longer than the host takes to issue
  the call, so that the whole call is queued before its start event runs: the events bracket the
  GPU's work alone (the benchmark's time, timed the benchmark's way);
- host: the host's time to issue the call while the GPU is busy.

``mamba_state[ssm]`` and ``mamba_state[conv]`` commit one state kind alone, which shows whether
one kind's blocks hold the launch up; ``op`` is the raw operator, without the Python wrappers.

    python scripts/gpu_timing.py [--preset NAME ...] [--n N ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import mamba_state_ext
from mamba_state_ext import bench
from mamba_state_ext.bench.timing import sleep_cycles_covering, sleep_cycles_per_second


def kind_only(k: int):
    def call(w: bench.Workload, i: int) -> None:
        s = w.index_sets[i]
        torch.ops.mamba_state.update(
            [w.states[k]],
            [s.caches[k]],
            s.slots,
            s.steps,
            src_rows=s.rows,
            track_slots=s.track_slots,
            track_steps=s.track_steps,
        )

    return call


def raw_op(w: bench.Workload, i: int) -> None:
    s = w.index_sets[i]
    torch.ops.mamba_state.update(
        w.states,
        s.caches,
        s.slots,
        s.steps,
        src_rows=s.rows,
        track_slots=s.track_slots,
        track_steps=s.track_steps,
    )


def time_call(
    call, workload: bench.Workload, reps: int, cycles_per_second: float
) -> tuple[float, float, float]:
    """Medians in microseconds: (idle, device, host)."""
    torch.cuda.synchronize()
    started = time.perf_counter()
    call(workload, 0)
    sleep_cycles = sleep_cycles_covering(time.perf_counter() - started, cycles_per_second)
    idle, device, host = [], [], []
    for rep in range(reps):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call(workload, rep % workload.sets)
        end.record()
        torch.cuda.synchronize()
        idle.append(start.elapsed_time(end) * 1e3)

        torch.cuda._sleep(sleep_cycles)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        started = time.perf_counter()
        call(workload, (rep + 1) % workload.sets)
        host.append((time.perf_counter() - started) * 1e6)
        end.record()
        torch.cuda.synchronize()
        device.append(start.elapsed_time(end) * 1e3)
    return statistics.median(idle), statistics.median(device), statistics.median(host)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset",
        nargs="+",
        default=["qwen3-next-tp4", "sglang-qwen3-next-tp4"],
        choices=bench.PRESETS,
    )
    parser.add_argument("--n", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--sglang", metavar="PATH", help="as the benchmark's --sglang")
    args = parser.parse_args()
    device = torch.device("cuda", torch.cuda.current_device())
    print(
        f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}; "
        f"{mamba_state_ext.backend()}"
    )
    methods = {
        "mamba_state": bench.METHODS["mamba_state"][0],
        "op": raw_op,
        "mamba_state[ssm]": kind_only(0),
        "mamba_state[conv]": kind_only(1),
        "copy": bench.METHODS["copy"][0],
        "empty_launch": bench.METHODS["empty_launch"][0],
    }
    cycles_per_second = sleep_cycles_per_second(device)
    why = bench.load_sglang(device, args.sglang)
    if why is None:
        methods["sglang"] = bench.METHODS["sglang"][0]
    else:
        print(why)
    for name in args.preset:
        preset = bench.PRESETS[name]
        print(f"\n{name}: {preset.bytes_per_entry() / bench.MIB:.2f} MiB per entry")
        print(
            f"{'N':>4}  {'method':<19}{'idle us':>9}{'device us':>11}{'host us':>9}"
            f"{'device GB/s':>13}"
        )
        for n in args.n:
            workload = bench.Workload(preset, n, device)
            for method, call in methods.items():
                for index_set in range(workload.sets):  # warm up (Triton compiles)
                    call(workload, index_set)
                idle, device_us, host = time_call(call, workload, args.reps, cycles_per_second)
                rate = "-" if "[" in method else f"{workload.bytes / device_us / 1e3:.1f}"
                print(f"{n:>4}  {method:<19}{idle:>9.1f}{device_us:>11.1f}{host:>9.1f}{rate:>13}")
            del workload
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
