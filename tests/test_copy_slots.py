"""mamba_state::copy_slots against the per-entry reference (reference.loop_copy_slots), bit for
bit over the whole storage, on every implementation: the raw op, the wrapper, the Python fallback,
and the CUDA kernel's grid run on the CPU."""

import pytest
import torch
from helpers import (
    COMPILED,
    CUDA,
    RAW_DTYPES,
    assert_same_bits,
    make_pool,
    run_copy_slots_grid_on_cpu,
)

import mamba_state_ext
from mamba_state_ext import checks, fallback
from mamba_state_ext.reference import loop_copy_slots

LAYERS, SLOTS = 3, 13

IMPLEMENTATIONS = {
    "op": lambda *args, **kwargs: torch.ops.mamba_state.copy_slots(*args, **kwargs),
    "wrapper": lambda states, src, dst, **kwargs: mamba_state_ext.copy_slots(
        states, src, dst, **kwargs
    ),
    "fallback": fallback.copy_slots,
    "grid": run_copy_slots_grid_on_cpu,
}
PARAMS = [
    pytest.param("op", "cpu", marks=COMPILED),
    pytest.param("wrapper", "cpu"),
    pytest.param("fallback", "cpu"),
    pytest.param("grid", "cpu"),
    pytest.param("op", "cuda", marks=[CUDA, COMPILED]),
    pytest.param("fallback", "cuda", marks=CUDA),
]


def make_call(device, dtypes, layout, *, seed=0):
    """Pools of the given dtypes; entries: three copies, a negative source, a negative
    destination, and one masked out; no slot both read and written."""
    generator = torch.Generator().manual_seed(seed)
    entries = [
        (6, 7, True),
        (0, 5, True),
        (12, 2, True),
        (-1, 3, True),
        (4, -1, True),
        (8, 9, False),
    ]
    src, dst, mask = (torch.tensor(column) for column in zip(*entries))
    pools = [make_pool((LAYERS, SLOTS, 5, 6), dtype, layout, generator, device) for dtype in dtypes]
    return pools, src.to(device), dst.to(device), mask.to(device)


@pytest.mark.parametrize("implementation,device", PARAMS)
@pytest.mark.parametrize("layout", ["contiguous", "sliced", "permuted"])
@pytest.mark.parametrize(
    "dtypes", [(torch.float32, torch.bfloat16), RAW_DTYPES], ids=["ssm-conv", "raw-sizes"]
)
def test_matches_the_reference(implementation, device, layout, dtypes):
    pools, src, dst, mask = make_call(device, dtypes, layout)
    expected = [pool.clone() for pool in pools]
    loop_copy_slots([p.view for p in expected], src, dst, mask=mask)
    IMPLEMENTATIONS[implementation]([p.view for p in pools], src, dst, mask=mask)
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)


@pytest.mark.parametrize(
    "implementation,device",
    [
        pytest.param("grid", "cpu"),
        pytest.param("op", "cuda", marks=[CUDA, COMPILED]),
        pytest.param("fallback", "cuda", marks=CUDA),
    ],
)
def test_bad_slot_without_sync(implementation, device):
    """Where the op cannot raise: a bad entry is applied nowhere, entry_status names its bound."""
    pools, src, dst, mask = make_call(device, (torch.float32,), "contiguous", seed=1)
    src[1], dst[2] = SLOTS + 2, SLOTS
    good = torch.tensor([True, False, False, True, True, True], device=device)
    expected = [pool.clone() for pool in pools]
    loop_copy_slots([p.view for p in expected], src[good], dst[good], mask=mask[good])
    status = torch.full((6,), -1, dtype=torch.int32, device=device)
    IMPLEMENTATIONS[implementation](
        [p.view for p in pools], src, dst, mask=mask, entry_status=status
    )
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)
    assert status.tolist() == [0, checks.ROW_OUT_OF_RANGE, checks.SLOT_OUT_OF_RANGE, 0, 0, 0]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_opcheck(device):
    pools, src, dst, mask = make_call(device, (torch.float32, torch.bfloat16), "contiguous")
    status = torch.zeros(6, dtype=torch.int32, device=device)
    torch.library.opcheck(
        torch.ops.mamba_state.copy_slots.default,
        ([p.view for p in pools], src, dst),
        dict(mask=mask, entry_status=status),
    )


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_compile_fullgraph(device):
    pools, src, dst, mask = make_call(device, (torch.float32, torch.bfloat16), "contiguous")
    expected = [pool.clone() for pool in pools]
    loop_copy_slots([p.view for p in expected], src, dst, mask=mask)

    @torch.compile(fullgraph=True)
    def track(states, src, dst, mask):
        mamba_state_ext.copy_slots(states, src, dst, mask=mask, check=False)

    track([p.view for p in pools], src, dst, mask)
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)
