#!/usr/bin/env python
"""A small call of every path of the CUDA kernel, for compute-sanitizer (scripts/gpu_check.sh):
good, skipped and bad entries (with entry_status), every dtype pairing and raw sizes, vectorized
and scalar units, sliced / permuted / overlapping-window layouts, int32 and int64 indices, a
call of more state kinds than one launch holds, and quantized kinds (both quantize paths, each
pool dtype, a quantized cache copied, more quantized kinds than one launch holds). Every result
is checked against the reference; exits non-zero on a mismatch.

    compute-sanitizer --tool memcheck python scripts/sanitizer_cases.py
    python scripts/sanitizer_cases.py --device cpu      # the same cases on the CPU kernel
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import mamba_state_ext
from mamba_state_ext.ops import raw_scales
from mamba_state_ext.quantization import QUANTIZED_DTYPES
from mamba_state_ext.reference import loop_update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import (
    FLOAT_PAIRS,
    RAW_DTYPES,
    assert_same_bits,
    make_indices,
    make_intermediate,
    make_pool,
)

LAYERS, SLOTS, ROWS, STEPS = 2, 9, 5, 4


def run_case(device, kinds, *, index_dtype=torch.int64, bad_entry=False, seed=0):
    """kinds: (entry, state dtype, intermediate dtype, state layout, intermediate layout), and
    for a quantized kind its scales' group shape last (a quantized intermediate dtype: a
    quantized cache, with scales of its own)."""
    generator = torch.Generator().manual_seed(seed)
    pools = [
        make_pool((LAYERS, SLOTS, *kind[0]), kind[1], kind[3], generator, device) for kind in kinds
    ]
    caches = [
        make_intermediate(
            (LAYERS, ROWS, STEPS, *kind[0]), kind[2], kind[4], generator, device, finite=True
        )
        for kind in kinds
    ]
    groups = [kind[5] if len(kind) > 5 else None for kind in kinds]
    scale_pools = [
        None
        if g is None
        else make_pool((LAYERS, SLOTS, *g), torch.float32, "contiguous", generator, device)
        for g in groups
    ]
    cache_scales = [
        make_intermediate(
            (LAYERS, ROWS, STEPS, *g), torch.float32, "contiguous", generator, device, finite=True
        )
        if g is not None and kind[2] in QUANTIZED_DTYPES
        else None
        for g, kind in zip(groups, kinds)
    ]
    storages = pools + [pool for pool in scale_pools if pool is not None]
    slots, steps, rows = make_indices(
        ROWS, SLOTS, ROWS, STEPS, generator, device=device, index_dtypes=(index_dtype,) * 3
    )
    # Entry 0 points past the pool: applied nowhere, reported in entry_status. On the CPU the op
    # raises for it instead (tests/test_update.py), so there the case runs with every entry good.
    bad_entry = bad_entry and device != "cpu"
    if bad_entry:
        slots[0], steps[0], rows[0] = SLOTS + 3, 0, 0

    def scales_of(pools):
        return [None if pool is None else pool.view for pool in pools]

    expected = [pool.clone() for pool in pools]
    expected_scales = [None if pool is None else pool.clone() for pool in scale_pools]
    good = torch.ones(ROWS, dtype=torch.bool, device=device)
    good[0] = not bad_entry
    loop_update(
        [p.view for p in expected],
        caches,
        slots[good],
        steps[good],
        src_rows=rows[good],
        state_scales=scales_of(expected_scales),
        intermediate_scales=cache_scales,
    )
    status = torch.full((ROWS,), -1, dtype=torch.int32, device=device)
    states = [p.view for p in pools]
    scales = raw_scales(states, caches, scales_of(scale_pools), cache_scales, None)
    torch.ops.mamba_state.update(
        states, caches, slots, steps, src_rows=rows, entry_status=status, **scales
    )
    references = expected + [pool for pool in expected_scales if pool is not None]
    for storage, reference in zip(storages, references):
        assert_same_bits(storage.parent, reference.parent)
    expected_status = [1 if (n == 0 and bad_entry) else 0 for n in range(ROWS)]
    assert status.tolist() == expected_status, status.tolist()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    device = parser.parse_args().device
    print(f"backend: {mamba_state_ext.backend()}")
    cases = 0
    for dst, src in FLOAT_PAIRS + [(dtype, dtype) for dtype in RAW_DTYPES]:
        for layout in ("contiguous", "sliced"):  # 16-byte units, then single elements
            run_case(device, [((4, 8), dst, src, layout, layout)], seed=cases)
            cases += 1
    for dst_layout in ("contiguous", "sliced", "permuted"):
        for src_layout in ("contiguous", "sliced", "permuted", "window"):
            run_case(
                device,
                [((6, 4), torch.float32, torch.bfloat16, dst_layout, src_layout)],
                seed=cases,
            )
            cases += 1
    for index_dtype in (torch.int32, torch.int64):
        run_case(
            device,
            [((3, 16), torch.bfloat16, torch.bfloat16, "contiguous", "window")],
            index_dtype=index_dtype,
            bad_entry=True,
            seed=cases,
        )
        cases += 1
    many_kinds = [
        ((k + 1, 8), torch.float32, torch.float16, "contiguous", "contiguous") for k in range(10)
    ]
    run_case(device, many_kinds, bad_entry=True, seed=cases)
    cases += 1
    # Quantized: groups of 128 and 64 x 16 contiguous elements (registers), then groups that are
    # not runs, a group that is not a power of two of units, a strided pool (a warp per group).
    for pool_dtype in QUANTIZED_DTYPES:
        for source in (torch.float32, torch.float16, torch.bfloat16):
            for entry, groups, layout in (
                ((2, 8, 128), (2, 8), "contiguous"),
                ((2, 64, 16), (2, 1), "contiguous"),
                ((4, 6, 5), (2, 3), "contiguous"),
                ((6, 100), (3,), "contiguous"),
                ((2, 8, 16), (2, 8), "sliced"),
            ):
                kind = (entry, pool_dtype, source, layout, layout, groups)
                run_case(device, [kind], bad_entry=cases % 2 == 1, seed=cases)
                cases += 1
    copied = (
        (2, 8, 16),
        torch.float8_e4m3fn,
        torch.float8_e4m3fn,
        "contiguous",
        "contiguous",
        (2, 8),
    )
    run_case(device, [copied], bad_entry=True, seed=cases)
    cases += 1
    # More quantized kinds than one launch takes, beside a plain one.
    many_quantized = [
        ((2, 8, 16), torch.int8, torch.float16, "contiguous", "contiguous", (2, 8))
        for _ in range(3)
    ] + [((3, 16), torch.bfloat16, torch.float32, "contiguous", "contiguous")]
    run_case(device, many_quantized, bad_entry=True, seed=cases)
    cases += 1
    print(f"{cases} cases agree with the reference on {device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
