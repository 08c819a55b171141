"""mamba_state::update against the per-entry reference (reference.loop_update), bit for bit, on
every implementation: the raw op, the wrapper, the Python fallback, and the CUDA kernel's grid run
on the CPU. Each test compares the whole storage under the pools, so a byte written outside the
selected slots fails it."""

import pytest
import torch
from helpers import (
    COMPILED,
    CUDA,
    DEVICES,
    FLOAT_PAIRS,
    IMPLEMENTATIONS,
    RAW_DTYPES,
    assert_same_bits,
    implementation_params,
    make_indices,
    make_intermediate,
    make_pool,
    run_cuda_grid_on_cpu,
)
from torch.utils._python_dispatch import TorchDispatchMode

from mamba_state_ext import checks, fallback
from mamba_state_ext.reference import loop_update

# Not powers of two, on purpose.
LAYERS, SLOTS, ROWS, STEPS = 3, 11, 7, 5


def check_against_reference(
    implementation,
    device,
    *,
    kinds,
    num_entries=6,
    index_dtypes=(torch.int64,) * 3,
    step_offset=0,
    with_src_rows=True,
    seed=0,
):
    """kinds: (state shape, state dtype, intermediate dtype, state layout, intermediate layout)."""
    generator = torch.Generator().manual_seed(seed)
    pools, intermediates = [], []
    for entry, dst_dtype, src_dtype, dst_layout, src_layout in kinds:
        pools.append(make_pool((LAYERS, SLOTS, *entry), dst_dtype, dst_layout, generator, device))
        intermediates.append(
            make_intermediate(
                (LAYERS, ROWS, STEPS, *entry), src_dtype, src_layout, generator, device
            )
        )
    slots, steps, rows = make_indices(
        num_entries,
        SLOTS,
        ROWS,
        STEPS,
        generator,
        step_offset=step_offset,
        index_dtypes=index_dtypes,
        with_src_rows=with_src_rows,
        device=device,
    )
    expected = [pool.clone() for pool in pools]
    loop_update(
        [p.view for p in expected],
        intermediates,
        slots,
        steps,
        src_rows=rows,
        step_offset=step_offset,
    )
    IMPLEMENTATIONS[implementation](
        [p.view for p in pools], intermediates, slots, steps, src_rows=rows, step_offset=step_offset
    )
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)


@pytest.mark.parametrize("implementation,device", implementation_params())
@pytest.mark.parametrize(
    "dst_dtype,src_dtype",
    FLOAT_PAIRS + [(dtype, dtype) for dtype in RAW_DTYPES],
    ids=lambda dtype: str(dtype).removeprefix("torch."),
)
def test_dtype_pairs(implementation, device, dst_dtype, src_dtype):
    kind = ((6, 8), dst_dtype, src_dtype, "contiguous", "contiguous")
    check_against_reference(implementation, device, kinds=[kind])


@pytest.mark.parametrize("implementation,device", implementation_params())
@pytest.mark.parametrize("dst_layout", ["contiguous", "sliced", "permuted"])
@pytest.mark.parametrize("src_layout", ["contiguous", "sliced", "permuted", "window"])
@pytest.mark.parametrize(
    "dst_dtype,src_dtype",
    [
        (torch.float32, torch.float32),
        (torch.float32, torch.bfloat16),
        (torch.bfloat16, torch.bfloat16),
    ],
    ids=["f32", "bf16-to-f32", "bf16"],
)
def test_layouts(implementation, device, dst_layout, src_layout, dst_dtype, src_dtype):
    kind = ((6, 4), dst_dtype, src_dtype, dst_layout, src_layout)
    check_against_reference(implementation, device, kinds=[kind], seed=1)


@pytest.mark.parametrize("implementation,device", implementation_params())
@pytest.mark.parametrize("slot_dtype", [torch.int32, torch.int64], ids=["slots32", "slots64"])
@pytest.mark.parametrize("step_dtype", [torch.int32, torch.int64], ids=["steps32", "steps64"])
@pytest.mark.parametrize(
    "row_dtype", [None, torch.int32, torch.int64], ids=["no-rows", "rows32", "rows64"]
)
def test_index_dtypes(implementation, device, slot_dtype, step_dtype, row_dtype):
    kind = ((5,), torch.float32, torch.float32, "contiguous", "contiguous")
    check_against_reference(
        implementation,
        device,
        kinds=[kind],
        index_dtypes=(slot_dtype, step_dtype, row_dtype),
        with_src_rows=row_dtype is not None,
        num_entries=ROWS,
        seed=2,
    )


@pytest.mark.parametrize("implementation,device", implementation_params())
@pytest.mark.parametrize("step_offset", [-1, 0, 1])
def test_step_offset(implementation, device, step_offset):
    kind = ((4, 3), torch.float32, torch.float16, "contiguous", "contiguous")
    check_against_reference(implementation, device, kinds=[kind], step_offset=step_offset, seed=3)


@pytest.mark.parametrize("implementation,device", implementation_params())
def test_a_step_offset_near_the_int64_limits_wraps_as_torch_adds(implementation, device):
    """steps[n] + step_offset past the int64 range wraps, on every implementation, as torch's
    int64 addition does: 2^62 + 2^62 is negative (skipped), and -2^62 + 2^62 + 1 is step 1."""
    pool = torch.zeros(2, 4, 3, device=device)
    cache = torch.arange(2 * 3 * 2 * 3, dtype=torch.float32, device=device).view(2, 3, 2, 3)
    big = 2**62
    slots = torch.tensor([0, 1], device=device)
    steps = torch.tensor([big, -big], device=device)
    IMPLEMENTATIONS[implementation]([pool], [cache], slots, steps, step_offset=big)
    assert not pool[:, 0].any()  # wrapped to a negative step: skipped
    IMPLEMENTATIONS[implementation]([pool], [cache], slots, steps - 1, step_offset=big + 2)
    assert pool[:, 1].equal(cache[:, 1, 1])
    assert not pool[:, [0, 2, 3]].any()


@pytest.mark.parametrize("implementation,device", implementation_params())
def test_ssm_and_conv_in_one_call(implementation, device):
    """The real call: an SSM pool (float32) and a conv pool (bfloat16, de-duplicated windows)."""
    kinds = [
        ((2, 8, 8), torch.float32, torch.float32, "contiguous", "contiguous"),
        ((24, 3), torch.bfloat16, torch.bfloat16, "contiguous", "window"),
    ]
    check_against_reference(implementation, device, kinds=kinds, num_entries=SLOTS, seed=4)


@pytest.mark.parametrize("implementation,device", implementation_params())
def test_more_kinds_than_one_launch_holds(implementation, device):
    kinds = [
        ((k + 1, 3), torch.float32, torch.float16, "contiguous", "contiguous") for k in range(11)
    ]
    check_against_reference(implementation, device, kinds=kinds, seed=5)


@pytest.mark.parametrize("implementation,device", implementation_params())
@pytest.mark.parametrize(
    "entry,num_entries",
    [((), 5), ((0, 3), 5), ((1, 1, 7), 5), ((5,), 0), ((3,), 1), ((2, 3, 2, 3, 2, 1, 2, 3), 4)],
    ids=["scalar-entry", "empty-entry", "unit-dims", "no-entries", "one-entry", "rank-8"],
)
def test_edge_shapes(implementation, device, entry, num_entries):
    kind = (entry, torch.float32, torch.bfloat16, "contiguous", "contiguous")
    check_against_reference(implementation, device, kinds=[kind], num_entries=num_entries, seed=6)


@pytest.mark.parametrize("implementation,device", implementation_params())
def test_zero_layers(implementation, device):
    """A kind with no layers copies nothing, beside one that has layers; its entries are still
    checked: entry_status says so on CUDA, and the CPU raises."""
    empty = torch.zeros(0, 4, 3, device=device)
    pool = make_pool((2, 4, 3), torch.float32, "contiguous", torch.Generator(), device)
    caches = [torch.zeros(0, 2, 2, 3, device=device), torch.randn(2, 2, 2, 3, device=device)]
    expected = pool.clone()
    loop_update([expected.view], caches[1:], torch.tensor([1, -1]), torch.tensor([0, 1]))
    status = torch.full((2,), -1, dtype=torch.int32, device=device)
    run = IMPLEMENTATIONS[implementation]
    run(
        [empty, pool.view],
        caches,
        torch.tensor([1, -1], device=device),
        torch.tensor([0, 1], device=device),
        entry_status=status,
    )
    assert_same_bits(pool.parent, expected.parent)
    assert status.tolist() == [0, 0]
    bad_slot = torch.tensor([4, -1], device=device)
    if device == "cpu" and implementation != "grid":
        with pytest.raises(IndexError, match="entry 0: dst slot 4 is out of range"):
            run([empty], caches[:1], bad_slot, torch.tensor([0, 1], device=device))
    else:
        run([empty], caches[:1], bad_slot, torch.tensor([0, 1], device=device), entry_status=status)
        assert status.tolist() == [checks.SLOT_OUT_OF_RANGE, 0]


@pytest.mark.parametrize("implementation,device", implementation_params())
def test_all_entries_skipped(implementation, device):
    """Every entry skipped (a padded CUDA-graph batch with nothing accepted): nothing changes,
    and the garbage in the skipped entries' slots and rows is not checked."""
    pool = make_pool((LAYERS, SLOTS, 4), torch.float32, "contiguous", torch.Generator(), device)
    before = pool.parent.clone()
    intermediate = torch.randn(LAYERS, ROWS, STEPS, 4, device=device)
    slots = torch.tensor([-5, 99, 3], device=device)
    IMPLEMENTATIONS[implementation](
        [pool.view],
        [intermediate],
        slots,
        torch.tensor([-1, -2, 0], device=device),
        src_rows=torch.tensor([123, -4, 0], device=device),
        step_offset=-1,
    )
    assert_same_bits(pool.parent, before)


BAD_ENTRIES = [
    # (dst slot, src row, step, status bits)
    (SLOTS, 0, 0, checks.SLOT_OUT_OF_RANGE),
    (0, ROWS, 0, checks.ROW_OUT_OF_RANGE),
    (0, -3, 0, checks.ROW_OUT_OF_RANGE),
    (0, 0, STEPS, checks.STEP_OUT_OF_RANGE),
    (
        SLOTS + 5,
        -1,
        STEPS + 2,
        checks.SLOT_OUT_OF_RANGE | checks.ROW_OUT_OF_RANGE | checks.STEP_OUT_OF_RANGE,
    ),
]


def bad_entry_call(device, bad):
    """Entries 0 and 2 are good, entry 1 is bad, entry 3 is skipped with garbage indices."""
    bad_slot, bad_row, bad_step, _ = bad
    generator = torch.Generator().manual_seed(7)
    pool = make_pool((LAYERS, SLOTS, 6, 4), torch.float32, "contiguous", generator, device)
    intermediate = make_intermediate(
        (LAYERS, ROWS, STEPS, 6, 4), torch.bfloat16, "contiguous", generator, device
    )
    slots = torch.tensor([4, bad_slot, 9, -100], device=device)
    rows = torch.tensor([1, bad_row, 6, 1000], device=device)
    steps = torch.tensor([2, bad_step, 0, -1], device=device, dtype=torch.int32)
    return pool, intermediate, slots, steps, rows


# Where a bad entry is reported, not raised: on CUDA, and on the CPU the CUDA grid and the
# fallback's CUDA path (without_raising).
WITHOUT_RAISING = [
    pytest.param("grid", "cpu"),
    pytest.param("fallback", "cpu", id="fallback-cpu-without-raising"),
    pytest.param("op", "cuda", marks=[CUDA, COMPILED]),
    pytest.param("fallback", "cuda", marks=CUDA),
]


def without_raising(monkeypatch, implementation, device):
    """The fallback on the CPU takes its CUDA path (report, do not raise) once its raise is
    stubbed out: the same code, run where there is no GPU."""
    if implementation == "fallback" and device == "cpu":
        monkeypatch.setattr(checks, "raise_for_first_bad_entry", lambda *args: None)


@pytest.mark.parametrize("bad", BAD_ENTRIES, ids=lambda bad: f"status{bad[3]}")
@pytest.mark.parametrize("implementation,device", WITHOUT_RAISING)
def test_bad_entry_without_sync(implementation, device, bad, monkeypatch):
    """Where the op cannot raise (CUDA): a bad entry is applied nowhere, the good ones are, and
    entry_status says which bound the bad one broke."""
    without_raising(monkeypatch, implementation, device)
    pool, intermediate, slots, steps, rows = bad_entry_call(device, bad)
    expected = pool.clone()
    good = torch.tensor([True, False, True, True], device=device)
    loop_update([expected.view], [intermediate], slots[good], steps[good], src_rows=rows[good])
    status = torch.full((4,), -1, dtype=torch.int32, device=device)
    IMPLEMENTATIONS[implementation](
        [pool.view], [intermediate], slots, steps, src_rows=rows, entry_status=status
    )
    assert_same_bits(pool.parent, expected.parent)
    assert status.tolist() == [0, bad[3], 0, 0]


@pytest.mark.parametrize("implementation,device", WITHOUT_RAISING)
def test_a_bad_track_copy_keeps_back_its_entrys_commit(implementation, device, monkeypatch):
    """A bad entry applies none of its copies: where only its track copy is bad, its good commit
    is not applied either; the other entries' copies are."""
    without_raising(monkeypatch, implementation, device)
    generator = torch.Generator().manual_seed(8)
    pool = make_pool((LAYERS, SLOTS, 6, 4), torch.float32, "contiguous", generator, device)
    intermediate = make_intermediate(
        (LAYERS, ROWS, STEPS, 6, 4), torch.bfloat16, "contiguous", generator, device
    )
    index = dict(device=device)
    slots, steps = torch.tensor([1, 2, 3, 4], **index), torch.tensor([0, 1, 2, 3], **index)
    track_slots = torch.tensor([SLOTS, -1, 5, 6], **index)  # entry 0: a track slot past the pool
    track_steps = torch.tensor([1, 0, STEPS, 4], **index)  # entry 2: a track step past the cache
    expected = pool.clone()
    loop_update(
        [expected.view],
        [intermediate],
        slots[[1, 3]],
        steps[[1, 3]],
        src_rows=torch.tensor([1, 3], **index),  # the op's rows are the entries' positions
        track_slots=track_slots[[1, 3]],
        track_steps=track_steps[[1, 3]],
    )
    status = torch.full((4,), -1, dtype=torch.int32, device=device)
    IMPLEMENTATIONS[implementation](
        [pool.view],
        [intermediate],
        slots,
        steps,
        entry_status=status,
        track_slots=track_slots,
        track_steps=track_steps,
    )
    assert_same_bits(pool.parent, expected.parent)
    assert status.tolist() == [checks.TRACK_SLOT_OUT_OF_RANGE, 0, checks.TRACK_STEP_OUT_OF_RANGE, 0]


@pytest.mark.parametrize("bad", BAD_ENTRIES, ids=lambda bad: f"status{bad[3]}")
@pytest.mark.parametrize("implementation", ["op", "fallback", "wrapper"])
def test_bad_entry_raises_on_cpu_before_writing(implementation, bad):
    pool, intermediate, slots, steps, rows = bad_entry_call("cpu", bad)
    before = pool.parent.clone()
    status = torch.full((4,), -1, dtype=torch.int32)
    with pytest.raises(IndexError, match=r"mamba_state.update: entry 1: "):
        IMPLEMENTATIONS[implementation](
            [pool.view], [intermediate], slots, steps, src_rows=rows, entry_status=status
        )
    assert_same_bits(pool.parent, before)
    assert status.tolist() == [-1] * 4


@pytest.mark.parametrize("implementation", ["op", "fallback"])
def test_entry_status_on_cpu(implementation):
    pool, intermediate, slots, steps, rows = bad_entry_call("cpu", (0, 0, 0, 0))
    status = torch.full((8,), -1, dtype=torch.int32)[::2]  # strided, to check the stride is used
    IMPLEMENTATIONS[implementation](
        [pool.view], [intermediate], slots, steps, src_rows=rows, entry_status=status
    )
    assert status.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "dst_dtype,src_dtype,dst_layout,src_layout,path,unit_elements",
    [
        (torch.float32, torch.float32, "contiguous", "contiguous", "one_dim", 4),
        (torch.bfloat16, torch.bfloat16, "contiguous", "contiguous", "one_dim", 8),
        (torch.float32, torch.bfloat16, "contiguous", "contiguous", "one_dim", 4),
        (torch.float16, torch.float32, "contiguous", "contiguous", "one_dim", 4),
        (torch.float16, torch.bfloat16, "contiguous", "contiguous", "one_dim", 8),
        (torch.complex128, torch.complex128, "contiguous", "contiguous", "one_dim", 1),
        (torch.float32, torch.float32, "permuted", "permuted", "one_dim", 4),  # merges into one run
        (torch.float32, torch.float32, "contiguous", "permuted", "rows", 4),
        (torch.bfloat16, torch.bfloat16, "contiguous", "window", "rows", 8),
        (torch.float32, torch.bfloat16, "contiguous", "window", "rows", 4),
        (torch.float32, torch.float32, "sliced", "contiguous", "strided", 1),
    ],
)
def test_grid_launch_plan(dst_dtype, src_dtype, dst_layout, src_layout, path, unit_elements):
    """The launch plan: 16-byte units (on the wider side) for aligned contiguous runs, 16-byte
    stores for a contiguous destination read from rows, single elements otherwise; one launch of
    at most max_blocks blocks (the persistent grid), fewer when there are fewer tiles."""
    generator = torch.Generator().manual_seed(8)
    entry = (8, 320) if src_layout != "window" else (320, 3)
    pool = make_pool((LAYERS, SLOTS, *entry), dst_dtype, dst_layout, generator)
    intermediate = make_intermediate(
        (LAYERS, ROWS, STEPS, *entry), src_dtype, src_layout, generator
    )
    slots, steps, rows = make_indices(5, SLOTS, ROWS, STEPS, generator)
    expected = pool.clone()
    loop_update([expected.view], [intermediate], slots, steps, src_rows=rows)
    status = torch.empty(5, dtype=torch.int32)
    tiles = -(-entry[0] * entry[1] // unit_elements // 1024)  # 256 threads x 4 units
    for max_blocks in (1, 7, 1000):
        launches = run_cuda_grid_on_cpu(
            [pool.view],
            [intermediate],
            slots,
            steps,
            src_rows=rows,
            entry_status=status,
            max_blocks=max_blocks,
        )
        blocks = min(5 * LAYERS * tiles, max_blocks)
        assert launches == [
            {
                "blocks": blocks,
                "states": [
                    {
                        "path": path,
                        "unit_elements": unit_elements,
                        "group_units": 0,
                        "tiles_per_state": tiles,
                        "blocks": blocks,
                    }
                ],
            }
        ]
        assert_same_bits(pool.parent, expected.parent)


def test_grid_launch_count():
    """Up to eight state kinds share one launch; an 11-kind call takes two."""
    states = [torch.zeros(2, 4, 16) for _ in range(11)]
    intermediates = [torch.ones(2, 3, 2, 16) for _ in range(11)]
    launches = run_cuda_grid_on_cpu(
        states, intermediates, torch.tensor([0, 3]), torch.tensor([1, 0])
    )
    assert [len(launch["states"]) for launch in launches] == [8, 3]
    for state in states:
        assert state[:, [0, 3]].eq(1).all() and not state[:, [1, 2]].any()


def test_grid_splits_many_tasks_and_shares_blocks_by_kind():
    """A launch resolves at most 512 tasks (entries of each index set): 300 entries with track
    copies take two launches, each of all the blocks it may have."""
    generator = torch.Generator().manual_seed(12)
    slots_total, entries = 700, 300
    pools = [
        make_pool((2, slots_total, 3, 5), torch.float32, "contiguous", generator),
        make_pool((2, slots_total, 24, 3), torch.bfloat16, "contiguous", generator),
    ]
    caches = [
        make_intermediate((2, entries, 3, 3, 5), torch.float32, "contiguous", generator),
        make_intermediate((2, entries, 3, 24, 3), torch.bfloat16, "window", generator),
    ]
    order = torch.randperm(slots_total, generator=generator)
    slots, track_slots = order[:entries], order[entries : 2 * entries]
    steps = torch.randint(-1, 3, (entries,), generator=generator)
    track_steps = torch.randint(-1, 3, (entries,), generator=generator)
    expected = [pool.clone() for pool in pools]
    loop_update(
        [p.view for p in expected],
        caches,
        slots,
        steps,
        track_slots=track_slots,
        track_steps=track_steps,
    )
    launches = run_cuda_grid_on_cpu(
        [p.view for p in pools],
        caches,
        slots,
        steps,
        track_slots=track_slots,
        track_steps=track_steps,
        max_blocks=20,
    )
    assert len(launches) == 2 and all(launch["blocks"] == 20 for launch in launches)
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)


@pytest.mark.parametrize("max_blocks", [264, 100, 9])
def test_grid_shares_blocks_by_expected_time(max_blocks):
    """The kinds share all the blocks in proportion to their tiles, a conv-window tile (element
    loads) counting 1.3: here an SSM-like kind of 16 tiles per entry and layer, a window of 1."""
    generator = torch.Generator().manual_seed(13)
    pools = [
        make_pool((4, 16, 64, 1024), torch.float32, "contiguous", generator),
        make_pool((4, 16, 1024, 3), torch.bfloat16, "contiguous", generator),
    ]
    caches = [
        make_intermediate((4, 8, 2, 64, 1024), torch.float32, "contiguous", generator),
        make_intermediate((4, 8, 2, 1024, 3), torch.bfloat16, "window", generator),
    ]
    slots, steps, rows = make_indices(8, 16, 8, 2, generator)
    expected = [pool.clone() for pool in pools]
    loop_update([p.view for p in expected], caches, slots, steps, src_rows=rows)
    [launch] = run_cuda_grid_on_cpu(
        [p.view for p in pools], caches, slots, steps, src_rows=rows, max_blocks=max_blocks
    )
    ssm, conv = launch["states"]
    assert (ssm["path"], ssm["tiles_per_state"], conv["path"], conv["tiles_per_state"]) == (
        "one_dim",
        16,
        "rows",
        1,
    )
    ssm_time, conv_time = 8 * 4 * 16, 8 * 4 * 1 * 1.3  # entries x layers x tiles x weight
    assert launch["blocks"] == ssm["blocks"] + conv["blocks"] == max_blocks
    assert abs(conv["blocks"] - max_blocks * conv_time / (ssm_time + conv_time)) <= 1
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)


def test_grid_keeps_the_budget_when_small_kinds_get_their_one_block():
    """Two kinds whose share rounds down to no block each get one; the large kind gives them up,
    so that the launch stays within the resident blocks."""
    generator = torch.Generator().manual_seed(14)
    pools = [
        make_pool((4, 16, 64, 1024), torch.float32, "contiguous", generator),
        make_pool((4, 16, 24), torch.float32, "contiguous", generator),
        make_pool((4, 16, 40), torch.bfloat16, "contiguous", generator),
    ]
    caches = [
        make_intermediate((4, 8, 2, 64, 1024), torch.float32, "contiguous", generator),
        make_intermediate((4, 8, 2, 24), torch.float32, "contiguous", generator),
        make_intermediate((4, 8, 2, 40), torch.bfloat16, "contiguous", generator),
    ]
    slots, steps, rows = make_indices(8, 16, 8, 2, generator)
    expected = [pool.clone() for pool in pools]
    loop_update([p.view for p in expected], caches, slots, steps, src_rows=rows)
    [launch] = run_cuda_grid_on_cpu(
        [p.view for p in pools], caches, slots, steps, src_rows=rows, max_blocks=9
    )
    # 512, 32 and 32 tiles of 16-byte copies: shares of 8, 0.5 and 0.5 blocks.
    assert [state["tiles_per_state"] for state in launch["states"]] == [16, 1, 1]
    assert [state["blocks"] for state in launch["states"]] == [7, 1, 1]
    assert launch["blocks"] == 9
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)


def test_grid_gives_back_the_block_that_costs_least():
    """Kinds of 1, 1, 5 and 25 tiles in 13 blocks: shares of 0.4, 0.4, 2.03 and 10.2 round to
    1, 1, 2 and 10, one too many. The block comes from the 25-tile kind (25 / 9 a block after),
    not the 5-tile one (5 / 1)."""
    generator = torch.Generator().manual_seed(15)
    tile = 1024 * 4  # float32 elements in a tile of 16-byte copies
    sizes = (tile, tile, 5 * tile, 25 * tile)
    pools = [make_pool((1, 3, size), torch.float32, "contiguous", generator) for size in sizes]
    caches = [
        make_intermediate((1, 1, 2, size), torch.float32, "contiguous", generator) for size in sizes
    ]
    slots, steps, rows = torch.tensor([2]), torch.tensor([1]), torch.tensor([0])
    expected = [pool.clone() for pool in pools]
    loop_update([p.view for p in expected], caches, slots, steps, src_rows=rows)
    [launch] = run_cuda_grid_on_cpu(
        [p.view for p in pools], caches, slots, steps, src_rows=rows, max_blocks=13
    )
    assert [state["tiles_per_state"] for state in launch["states"]] == [1, 1, 5, 25]
    assert [state["blocks"] for state in launch["states"]] == [1, 1, 2, 9]
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)


@pytest.mark.parametrize("implementation", [pytest.param("op", marks=COMPILED), "fallback", "grid"])
def test_offsets_past_2_to_the_31(implementation):
    """A source row and a destination slot more than 2**31 elements from the start. torch.empty
    only maps the pages that are written, so this needs about 3 MiB of memory, not 4 GiB."""
    entry = 1 << 20
    far = (1 << 31) // entry + 1  # 2049: offset 2049 * 2**20 > 2**31
    pool = torch.empty(1, far + 1, entry, dtype=torch.uint8)
    intermediate = torch.empty(1, far + 1, 1, entry, dtype=torch.uint8)
    source = torch.randint(0, 256, (entry,), dtype=torch.uint8)
    intermediate[0, far, 0] = source
    pool[0, 0] = 0
    pool[0, far] = 0
    IMPLEMENTATIONS[implementation](
        [pool],
        [intermediate],
        torch.tensor([far, 0]),
        torch.tensor([0, -1]),
        src_rows=torch.tensor([far, far]),
    )
    assert torch.equal(pool[0, far], source)
    assert not pool[0, 0].any()


class PoolWrites(TorchDispatchMode):
    """Every aten op that writes into the pool's storage, and the slots it writes (index_put_'s
    last index tensor)."""

    def __init__(self, pool: torch.Tensor):
        super().__init__()
        self.storage = pool.untyped_storage().data_ptr()
        self.slots = []
        self.other_writes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for i, argument in enumerate(func._schema.arguments):
            value = args[i] if i < len(args) else kwargs.get(argument.name)
            writes = argument.alias_info is not None and argument.alias_info.is_write
            if (
                writes
                and isinstance(value, torch.Tensor)
                and value.untyped_storage().data_ptr() == self.storage
            ):
                if func is torch.ops.aten.index_put_.default:
                    self.slots += args[1][-1].tolist()
                else:
                    self.other_writes.append(func)
        return func(*args, **kwargs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", ["nothing-copies", "some-copy"])
def test_the_fallback_writes_only_the_selected_slots(device, case):
    """No byte of a slot that no entry selected is written, not even with its own value: another
    stream may own that slot. With no entry that copies, nothing is written at all."""
    generator = torch.Generator().manual_seed(14)
    pool = make_pool((LAYERS, SLOTS, 4), torch.float32, "contiguous", generator, device)
    intermediate = torch.randn(LAYERS, ROWS, STEPS, 4, device=device)
    if case == "nothing-copies":  # skipped entries, and on CUDA bad ones too
        slots, steps = [-1, 3, 99 if device != "cpu" else -1], [0, -1, 0]
    else:
        slots, steps = [7, -1, 2, 5], [1, 0, -1, 3]
    slots = torch.tensor(slots, device=device)
    steps = torch.tensor(steps, device=device)
    expected = pool.clone()
    loop_update([expected.view], [intermediate], slots[slots < SLOTS], steps[slots < SLOTS])
    status = torch.zeros(slots.numel(), dtype=torch.int32, device=device)
    with PoolWrites(pool.view) as writes:
        fallback.update([pool.view], [intermediate], slots, steps, entry_status=status)
    assert_same_bits(pool.parent, expected.parent)
    assert writes.other_writes == []
    assert sorted(writes.slots) == ([] if case == "nothing-copies" else [5, 7])
    with PoolWrites(pool.view) as writes:
        fallback.copy_slots(
            [pool.view],
            torch.tensor([1, -1, 4], device=device),
            torch.tensor([-1, 6, 8], device=device),
        )
    assert writes.other_writes == [] and sorted(writes.slots) == [8]
