"""The benchmark runs end to end on the CPU, checks every method before timing it, and writes the
JSON shape that results from different machines are compared in."""

import json
import math

import pytest
import torch

import mamba_state_ext
from mamba_state_ext import bench

# What a result describes: machine, torch, the build and commit of mamba_state_ext.
JSON_KEYS = {
    "device",
    "card",
    "torch",
    "torch_cuda",
    "threads",
    "date",
    "version",
    "commit",
    "backend",
    "backend_cuda",
    "build",
    "host_cost",
    "results",
}
RESULT_KEYS = {
    "preset",
    "n",
    "live",
    "method",
    "median_us",
    "host_us",
    "bytes",
    "gbps",
    "extra_mib",
}


def test_quick_run_on_cpu(tmp_path, capsys):
    json_path, plot_path = tmp_path / "results.json", tmp_path / "plot.png"
    # 4 of the 36 layers: small enough that no method passes the quick run's time budget
    # (which would skip it), whatever the backend and the machine.
    code = bench.main(
        [
            "--quick",
            "--device",
            "cpu",
            "--layers",
            "4",
            "--json",
            str(json_path),
            "--plot",
            str(plot_path),
        ]
    )
    output = capsys.readouterr().out
    assert code == 0, output
    report = json.loads(json_path.read_text())
    assert set(report) == JSON_KEYS and report["device"] == "cpu"
    assert report["version"] and report["backend"] == mamba_state_ext.backend().name
    assert report["build"] == mamba_state_ext.backend().build
    assert report["host_cost"]["raw"] > 0 and report["host_cost"]["raw_vs_copy_1"] > 0
    assert all(set(result) == RESULT_KEYS for result in report["results"])
    measured = {(r["n"], r["method"]) for r in report["results"]}
    cpu_methods = ["loop", "vectorized", "mamba_state", "copy"]
    assert measured == {(n, m) for n in bench.QUICK_N["cpu"] for m in cpu_methods}
    assert all(r["median_us"] > 0 and r["gbps"] > 0 for r in report["results"])
    assert "preset qwen3-next-tp4" in output and "vs vectorized" in output
    pytest.importorskip("matplotlib")
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_wrong_result_fails_the_run(monkeypatch, capsys):
    commit, _ = bench.METHODS["mamba_state"]

    def broken(workload, index_set):
        commit(workload, index_set)
        workload.states[0][:, workload.index_sets[index_set].slots] += 1

    monkeypatch.setitem(bench.METHODS, "mamba_state", (broken, True))
    code = bench.main(
        [
            "--device",
            "cpu",
            "--preset",
            "small",
            "--n",
            "2",
            "--reps",
            "3",
            "--methods",
            "vectorized",
            "mamba_state",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "N=2 mamba_state: FAILED: result differs from the reference" in captured.err
    assert "mamba_state" not in [
        line.split()[1] for line in captured.out.splitlines() if line.strip().startswith("2 ")
    ]


def test_quantized_presets_check_values_and_scales(monkeypatch, capsys):
    """Each method's values and scales are checked against quantization.quantize; a scale off by
    one bit fails the method."""
    arguments = ["--device", "cpu", "--preset", "qwen3-next-tp4-fp8", "qwen3-next-tp4-int8"]
    arguments += ["--layers", "2", "--n", "1", "3", "--reps", "3"]
    assert bench.main(arguments + ["--methods", "vectorized", "mamba_state", "copy"]) == 0
    output = capsys.readouterr().out
    assert "ssm [8, 128, 128] float8_e4m3fn from float32, scales [8, 4]" in output
    assert "ssm [8, 128, 128] int8 from bfloat16, scales [8, 128]" in output
    assert "target N=3: share of copy_'s speed >= 0.8" in output
    commit, _ = bench.METHODS["mamba_state"]

    def off_by_one_bit(workload, index_set):
        commit(workload, index_set)
        scales = workload.state_scales[0][:, workload.index_sets[index_set].slots]
        workload.state_scales[0][:, workload.index_sets[index_set].slots] = torch.nextafter(
            scales, torch.tensor(float("inf"))
        )

    monkeypatch.setitem(bench.METHODS, "mamba_state", (off_by_one_bit, True))
    assert bench.main(arguments + ["--methods", "mamba_state"]) == 1
    assert "N=3 mamba_state: FAILED: result differs from the reference" in capsys.readouterr().err


def test_sglang_skips_a_quantized_preset():
    """SGLang's kernels write no quantized pool: the method says so instead of running."""
    from mamba_state_ext.bench.methods import METHODS
    from mamba_state_ext.bench.workload import Skip, Workload

    workload = Workload(bench.PRESETS["qwen3-next-tp4-int8"], 1, torch.device("cpu"))
    with pytest.raises(Skip, match="SGLang's kernels write no quantized pool"):
        METHODS["sglang"][0](workload, 0)


def test_layers_override_renames_the_preset(capsys):
    assert (
        bench.main(
            [
                "--device",
                "cpu",
                "--preset",
                "small",
                "--layers",
                "2",
                "--n",
                "1",
                "--reps",
                "3",
                "--methods",
                "mamba_state",
            ]
        )
        == 0
    )
    assert "preset small-2layers: 2 layers" in capsys.readouterr().out


def test_track_mode_times_the_full_commit(capsys):
    assert (
        bench.main(
            [
                "--device",
                "cpu",
                "--preset",
                "small",
                "--track",
                "--n",
                "3",
                "--reps",
                "3",
                "--methods",
                "vectorized",
                "mamba_state",
            ]
        )
        == 0
    )
    output = capsys.readouterr().out
    assert "preset small+track" in output
    assert {line.split()[1] for line in output.splitlines() if line.strip().startswith("3 ")} == {
        "vectorized",
        "mamba_state",
    }


def test_sglang_layout_and_padded_batch(capsys):
    """The SGLang preset (window conv cache, batch rows, track copies) and a padded batch: every
    method checked against the reference; sglang's kernels are CUDA only and the table says so."""
    assert (
        bench.main(
            [
                "--device",
                "cpu",
                "--preset",
                "sglang-qwen3-next-tp4",
                "--layers",
                "2",
                "--n",
                "4",
                "--padded",
                "2",
                "--reps",
                "3",
            ]
        )
        == 0
    )
    output = capsys.readouterr().out
    assert "SGLang layouts" in output and "note: sglang: its kernels refuse CPU tensors" in output
    rows = [line.split() for line in output.splitlines() if line.strip()[:1].isdigit()]
    assert {(row[0], row[1]) for row in rows} >= {
        ("4/2", "mamba_state"),
        ("2", "mamba_state"),
        ("4", "vectorized"),
    }


def synthetic(n, method, median_us, live=None, host_us=None):
    return {
        "n": n,
        "live": n if live is None else live,
        "method": method,
        "median_us": median_us,
        "host_us": host_us,
    }


def test_a_missed_target_never_reads_as_its_bound():
    """A share just under its bound, or a ratio just over, is shown rounded away from the bound,
    where two decimals to nearest would show the bound itself; every other number to nearest."""
    from mamba_state_ext.bench import report

    results = [
        synthetic(8, "copy", 1090.2),
        synthetic(8, "mamba_state", 1369.4),  # 0.796 < 0.8
        synthetic(32, "copy", 4035.4),
        synthetic(32, "mamba_state", 4816.3),  # 0.838 >= 0.8
    ]
    lines = report.target_lines(bench.PRESETS["qwen3-next-tp4-int8"], results, "cpu")
    assert "  target N=8: share of copy_'s speed >= 0.8: 0.79 MISSED" in lines
    assert "  target N=32: share of copy_'s speed >= 0.8: 0.84 met" in lines
    results = [
        synthetic(8, "copy", 100.0),
        synthetic(8, "mamba_state", 104.0),
        synthetic(64, "mamba_state", 104.0 * 1.0501, live=8),  # 1.0501 > 1.05
    ]
    lines = report.target_lines(bench.PRESETS["qwen3-next-tp4"], results, "cuda")
    assert "  target N=64 padded, 8 live: time vs 8 alone <= 1.05: 1.06 MISSED" in lines
    below = report._target_line("share", math.nextafter(0.8, 0), 0.8, True)
    above = report._target_line("ratio", math.nextafter(1.05, 2), 1.05, False)
    assert below == "  target share >= 0.8: 0.79 MISSED"
    assert above == "  target ratio <= 1.05: 1.06 MISSED"


def test_cuda_targets_against_synthetic_medians():
    """Each GPU target (bench/targets.py), met or missed by numbers made up to sit on either
    side."""
    from mamba_state_ext.bench import report

    results = [
        synthetic(1, "copy", 10.0, host_us=3.0),
        synthetic(1, "empty_launch", 5.0),
        synthetic(1, "mamba_state", 17.0, host_us=2.0),  # 17 / 15 = 1.13 <= 1.2
        synthetic(1, "sglang", 17.0),  # 1.00x < 1.15x
        synthetic(8, "copy", 100.0, host_us=3.0),
        synthetic(8, "mamba_state", 104.0, host_us=4.0),  # 96% >= 95%; host 1.33x > 1x
        synthetic(8, "sglang", 130.0),
        synthetic(8, "vectorized", 600.0),  # 5.77x >= 5x
        synthetic(64, "copy", 800.0),
        synthetic(64, "mamba_state", 850.0),  # 94% < 97%
        synthetic(64, "sglang", 900.0),
        synthetic(64, "vectorized", 1500.0),  # 1.76x < 2x
        synthetic(64, "mamba_state", 110.0, live=8),  # 110 / 104 = 1.06 > 1.05
    ]
    lines = report.target_lines(bench.PRESETS["qwen3-next-tp4"], results, "cuda")
    assert lines == [
        "  target N=8: share of copy_'s speed >= 0.95: 0.96 met",
        "  target N=64: share of copy_'s speed >= 0.97: 0.94 MISSED",
        "  target N=1: time vs copy_ + empty launch <= 1.2: 1.13 met",
        "  target N=1: speedup vs sglang >= 1.15: 1.00 MISSED",
        "  target N=8: speedup vs sglang >= 1.15: 1.25 met",
        "  target N=64: speedup vs sglang >= 1: 1.06 met",
        "  target N=64: speedup vs vectorized >= 2: 1.76 MISSED",
        "  target N=8: speedup vs vectorized >= 5: 5.77 met",
        "  target N=64 padded, 8 live: time vs 8 alone <= 1.05: 1.06 MISSED",
        "  target N=1: host issue time vs copy_'s <= 1: 0.67 met",
        "  target N=8: host issue time vs copy_'s <= 1: 1.33 MISSED",
    ]
    # A method this run did not time leaves its target unmeasured, not met.
    without_sglang = [r for r in results if r["method"] != "sglang"]
    lines = report.target_lines(bench.PRESETS["qwen3-next-tp4"], without_sglang, "cuda")
    assert "  target N=8: speedup vs sglang >= 1.15: not measured in this run" in lines
    # SGLang's layouts: one share target, at N = 64, of 95%.
    lines = report.target_lines(bench.PRESETS["sglang-qwen3-next-tp4"], results, "cuda")
    assert lines[0] == "  target N=64: share of copy_'s speed >= 0.95: 0.94 MISSED"
    assert not any("N=8: share" in line for line in lines)
    # A quantized preset: quantize-on-commit's targets alone.
    for name in ("qwen3-next-tp4-fp8", "qwen3-next-tp4-int8"):
        assert report.target_lines(bench.PRESETS[name], results, "cuda") == [
            "  target N=64: share of copy_'s speed >= 0.9: 0.94 met",
            "  target N=8: speedup vs vectorized >= 5: 5.77 met",
        ]


def test_cpu_targets_against_synthetic_medians():
    from mamba_state_ext.bench import report

    results = [
        synthetic(1, "copy", 100.0),
        synthetic(1, "mamba_state", 108.0),  # 93%
        synthetic(8, "copy", 800.0),
        synthetic(8, "mamba_state", 820.0),  # 98%
    ]
    assert report.target_lines(bench.PRESETS["qwen3-next-tp4"], results, "cpu") == [
        "  target N=1: share of copy_'s speed >= 0.95: 0.93 MISSED",
        "  target N=8: share of copy_'s speed >= 0.95: 0.98 met",
    ]
    assert report.target_lines(bench.PRESETS["sglang-qwen3-next-tp4"], results, "cpu") == [
        "  target N=1: share of copy_'s speed >= 0.9: 0.93 met",
        "  target N=8: share of copy_'s speed >= 0.9: 0.98 met",
    ]
    assert report.target_lines(bench.PRESETS["qwen3-next-tp4-fp8"], results, "cpu") == [
        "  target N=1: share of copy_'s speed >= 0.8: 0.93 met",
        "  target N=8: share of copy_'s speed >= 0.8: 0.98 met",
    ]
    assert report.target_lines(bench.PRESETS["small"], results, "cpu") == []
    assert report.host_target_lines({"raw_vs_copy_1": 5.6}, "cpu") == [
        "  target raw call's fixed cost vs a 1-element copy_ <= 4: 5.60 MISSED"
    ]
    assert report.host_target_lines({"raw_vs_copy_1": 3.9}, "cpu") == [
        "  target raw call's fixed cost vs a 1-element copy_ <= 4: 3.90 met"
    ]
    assert report.host_target_lines({"raw_vs_copy_1": 3.9}, "cuda") == []
