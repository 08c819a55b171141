"""python -m mamba_state_ext.bench: the command line."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

import mamba_state_ext
from mamba_state_ext.integrations.sglang import SGLANG_RELEASES

from . import host_cost
from .methods import METHODS, load_sglang
from .presets import DEFAULT_N, PRESETS, QUICK_N
from .report import TARGETS_SOURCE, format_table, host_target_lines, plot, target_lines
from .timing import device_description, run_preset


def source_commit() -> str | None:
    """The git commit the package was imported from ("-dirty" with local changes); outside a git
    checkout (an installed wheel), $MAMBA_STATE_EXT_COMMIT, which the GPU check sets to the commit
    its wheel was built from, else None."""
    root = Path(mamba_state_ext.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return os.environ.get("MAMBA_STATE_EXT_COMMIT")
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "mamba_state_ext"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def run_header(device: torch.device) -> dict:
    """What a result describes: the machine, torch, and the build of mamba_state_ext."""
    backend = mamba_state_ext.backend()
    try:
        version = importlib.metadata.version("mamba_state_ext")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {
        "device": device.type,
        "card": device_description(device),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "date": datetime.date.today().isoformat(),
        "version": version,
        "commit": source_commit(),
        "backend": backend.name,
        "backend_cuda": backend.cuda,
        "build": backend.build,
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m mamba_state_ext.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--preset", nargs="+", default=["qwen3-next-tp4"], choices=PRESETS)
    parser.add_argument("--n", nargs="+", type=int, help="batch sizes (default: by device)")
    parser.add_argument(
        "--padded",
        type=int,
        metavar="LIVE",
        help="also run each N above LIVE as a CUDA-graph batch of N entries of "
        "which LIVE apply (the rest slot and step -1), against LIVE alone",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--layers", type=int, help="override the preset's layer count")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--reps", type=int, help="timed calls per method (default 50, quick 5)")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and calls")
    parser.add_argument(
        "--track",
        action="store_true",
        help="time the full MTP-verify commit: every request's accepted state "
        "plus track copies for half of them (the SGLang presets always do)",
    )
    parser.add_argument(
        "--sglang",
        metavar="PATH",
        help=f"a wheel of SGLang ({', '.join(SGLANG_RELEASES)}), or a folder of its kernel "
        "files extracted from one, whose kernels the sglang method runs (default: the installed "
        "sglang package)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument(
        "--plot",
        metavar="PATH",
        help="write a PNG: time per call and share of copy_'s speed against N "
        "(and the host's issue time, on CUDA)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    device = (
        torch.device(args.device, torch.cuda.current_device())
        if args.device == "cuda"
        else torch.device("cpu")
    )
    sizes = sorted(set(args.n or (QUICK_N if args.quick else DEFAULT_N)[device.type]))
    cases = [(n, n) for n in sorted(set(sizes) | ({args.padded} if args.padded else set()))]
    if args.padded:
        cases += [(n, args.padded) for n in sizes if n > args.padded]
    methods = list(args.methods)
    skipped_methods = []
    if "sglang" in methods:
        why = load_sglang(device, args.sglang)
        if why:
            methods.remove("sglang")
            skipped_methods.append(why)
    if "empty_launch" in methods and device.type != "cuda":
        methods.remove("empty_launch")
    reps = args.reps or (5 if args.quick else 50)
    warmup = 1 if args.quick else 5
    budget_s = 2.0 if args.quick else 10.0
    header = run_header(device)
    print(
        f"mamba_state_ext.bench: {header['device']} ({header['card']}), torch {header['torch']}, "
        f"{header['threads']} threads, {header['date']}, mamba_state_ext {header['version']} "
        f"at commit {header['commit']}"
    )
    print(f"backend: {mamba_state_ext.backend()}")
    all_results, all_failures = [], []
    for name in args.preset:
        preset = PRESETS[name]
        if args.layers:
            preset = dataclasses.replace(
                preset, name=f"{preset.name}-{args.layers}layers", layers=args.layers
            )
        if args.track and not preset.sglang_layout:
            preset = dataclasses.replace(preset, name=f"{preset.name}+track")
        results, notes, failures = run_preset(
            preset,
            cases,
            methods,
            device,
            reps=reps,
            warmup=warmup,
            budget_s=budget_s,
            track=args.track,
        )
        print()
        print(format_table(preset, results, skipped_methods + notes + failures))
        lines = target_lines(preset, results, device.type)
        if lines:
            print(f"{TARGETS_SOURCE}, against this run's medians:")
            print("\n".join(lines))
        all_results += results
        all_failures += failures
    cost = host_cost.measure(device, rounds=20 if args.quick else 200)
    print()
    print("\n".join(host_cost.format_lines(cost) + host_target_lines(cost, device.type)))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        report = {**header, "host_cost": cost, "results": all_results}
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nresults written to {args.json}")
    if args.plot:
        print(plot(all_results, args.plot, header))
    for failure in all_failures:
        print(failure, file=sys.stderr)
    return 1 if all_failures else 0
