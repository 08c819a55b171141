#!/usr/bin/env python
"""A small call of every path of the CUDA kernel, for compute-sanitizer (scripts/gpu_check.sh):
good, skipped and bad entries (with entry_status), every dtype pairing and raw sizes, vectorized
and scalar units, sliced / permuted / overlapping-window layouts, int32 and int64 indices, and a
call of more state kinds than one launch holds. Every result is checked against the reference;
exits non-zero on a mismatch.

    compute-sanitizer --tool memcheck python scripts/sanitizer_cases.py
    python scripts/sanitizer_cases.py --device cpu      # the same cases on the CPU kernel
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import mamba_state_ext
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
    """kinds: (entry, state dtype, intermediate dtype, state layout, intermediate layout)."""
    generator = torch.Generator().manual_seed(seed)
    pools = [
        make_pool((LAYERS, SLOTS, *entry), dst, dst_layout, generator, device)
        for entry, dst, _, dst_layout, _ in kinds
    ]
    caches = [
        make_intermediate((LAYERS, ROWS, STEPS, *entry), src, src_layout, generator, device)
        for entry, _, src, _, src_layout in kinds
    ]
    slots, steps, rows = make_indices(
        ROWS, SLOTS, ROWS, STEPS, generator, device=device, index_dtypes=(index_dtype,) * 3
    )
    if bad_entry:  # entry 0 points past the pool: applied nowhere, reported in entry_status
        slots[0], steps[0], rows[0] = SLOTS + 3, 0, 0
    if device == "cpu" and bad_entry:
        return  # the CPU op raises for a bad entry (tests/test_update.py covers that)
    expected = [pool.clone() for pool in pools]
    good = torch.ones(ROWS, dtype=torch.bool, device=device)
    good[0] = not bad_entry
    loop_update([p.view for p in expected], caches, slots[good], steps[good], src_rows=rows[good])
    status = torch.full((ROWS,), -1, dtype=torch.int32, device=device)
    torch.ops.mamba_state.update(
        [p.view for p in pools], caches, slots, steps, src_rows=rows, entry_status=status
    )
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)
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
    print(f"{cases} cases agree with the reference on {device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
