"""The results as a table, the targets of ../shared/DESIGN.md, and a plot."""

from __future__ import annotations

from .methods import METHODS
from .presets import MIB, Preset


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
