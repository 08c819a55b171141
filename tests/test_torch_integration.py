"""The op as PyTorch sees it: opcheck, torch.compile(fullgraph=True), and on CUDA: no host sync,
CUDA-graph capture, the current stream, the device guard."""

import pytest
import torch
from helpers import (
    COMPILED_CUDA,
    CUDA,
    DEVICES,
    assert_same_bits,
    make_indices,
    make_intermediate,
    make_pool,
)

import mamba_state_ext
from mamba_state_ext.reference import loop_update

LAYERS, SLOTS, ROWS, STEPS = 2, 9, 5, 4


def make_call(device, seed=0, index_dtype=torch.int64):
    generator = torch.Generator().manual_seed(seed)
    pools = [
        make_pool((LAYERS, SLOTS, 4, 8), torch.float32, "contiguous", generator, device),
        make_pool((LAYERS, SLOTS, 6, 3), torch.bfloat16, "contiguous", generator, device),
    ]
    intermediates = [
        make_intermediate((LAYERS, ROWS, STEPS, 4, 8), torch.float32, "sliced", generator, device),
        make_intermediate((LAYERS, ROWS, STEPS, 6, 3), torch.bfloat16, "window", generator, device),
    ]
    slots, steps, rows = make_indices(
        ROWS, SLOTS, ROWS, STEPS, generator, device=device, index_dtypes=(index_dtype,) * 3
    )
    return pools, intermediates, slots, steps, rows


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "variant",
    ["positional", "all-arguments", "int32-indices", "lengths"],
)
def test_opcheck(device, variant):
    pools, intermediates, slots, steps, rows = make_call(
        device, index_dtype=torch.int32 if variant == "int32-indices" else torch.int64
    )
    args = ([p.view for p in pools], intermediates, slots, steps)
    kwargs = {}
    if variant == "all-arguments":
        kwargs = dict(
            src_rows=rows,
            step_offset=0,
            entry_status=torch.zeros(ROWS, dtype=torch.int32, device=device),
        )
    elif variant == "lengths":
        args = args[:3] + (steps + 1,)
        kwargs = dict(step_offset=-1)
    torch.library.opcheck(torch.ops.mamba_state.update.default, args, kwargs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("entry_point", ["raw-op", "wrapper"])
def test_compile_fullgraph(device, entry_point):
    pools, intermediates, slots, steps, rows = make_call(device, seed=1)
    expected = [pool.clone() for pool in pools]
    loop_update(
        [p.view for p in expected], intermediates, slots, steps + 1, src_rows=rows, step_offset=-1
    )

    @torch.compile(fullgraph=True)
    def commit(states, intermediates, slots, lengths, rows):
        if entry_point == "raw-op":
            torch.ops.mamba_state.update(
                states, intermediates, slots, lengths, src_rows=rows, step_offset=-1
            )
        else:
            mamba_state_ext.update(
                states, intermediates, slots, lengths, src_rows=rows, step_offset=-1, check=False
            )

    commit([p.view for p in pools], intermediates, slots, steps + 1, rows)
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)


@CUDA
@COMPILED_CUDA
def test_no_host_sync_on_cuda():
    """The compiled CUDA kernel, through the raw op and the hot-path wrappers, with every host
    sync an error; then its result. (The Python fallback reads its entries to the host.)"""
    pools, intermediates, slots, steps, rows = make_call("cuda", seed=2)
    expected = [pool.clone() for pool in pools]
    loop_update([p.view for p in expected], intermediates, slots, steps, src_rows=rows)
    status = torch.full((ROWS,), -1, dtype=torch.int32, device="cuda")
    states = [p.view for p in pools]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        torch.ops.mamba_state.update(
            states, intermediates, slots, steps, src_rows=rows, entry_status=status
        )
        mamba_state_ext.update(states, intermediates, slots, steps, src_rows=rows, check=False)
        mamba_state_ext.commit_verified_states(states, intermediates, slots, steps, src_rows=rows)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)
    assert status.tolist() == [0] * ROWS


@CUDA
@COMPILED_CUDA
def test_cuda_graph_replay_with_new_indices():
    pools, intermediates, slots, steps, rows = make_call("cuda", seed=3)
    states = [p.view for p in pools]
    mamba_state_ext.update(
        states, intermediates, slots, steps, src_rows=rows, check=False
    )  # warm-up
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        mamba_state_ext.update(states, intermediates, slots, steps, src_rows=rows, check=False)
    generator = torch.Generator().manual_seed(4)
    for _ in range(3):
        new_slots, new_steps, new_rows = make_indices(
            ROWS, SLOTS, ROWS, STEPS, generator, device="cuda"
        )
        slots.copy_(new_slots), steps.copy_(new_steps), rows.copy_(new_rows)
        expected = [pool.clone() for pool in pools]
        loop_update([p.view for p in expected], intermediates, slots, steps, src_rows=rows)
        graph.replay()
        torch.cuda.synchronize()
        for pool, reference in zip(pools, expected):
            assert_same_bits(pool.parent, reference.parent)


@CUDA
@COMPILED_CUDA
def test_runs_on_the_current_stream():
    pools, intermediates, slots, steps, rows = make_call("cuda", seed=5)
    before = [pool.parent.clone() for pool in pools]
    expected = [pool.clone() for pool in pools]
    loop_update([p.view for p in expected], intermediates, slots, steps, src_rows=rows)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)  # ~0.1 s: the op must queue behind this, not beside it
        mamba_state_ext.update(
            [p.view for p in pools], intermediates, slots, steps, src_rows=rows, check=False
        )
        done = torch.cuda.Event()
        done.record(side)
    # Work on the default stream does not wait for the side stream: an op launched there (or on
    # any stream but the current one) has written by now.
    default = torch.cuda.default_stream()
    default.synchronize()
    with torch.cuda.stream(default):
        unchanged = [pool.parent.cpu() for pool in pools]
    assert not done.query(), "the op finished before the work queued ahead of it on its stream"
    for pool, original in zip(unchanged, before):
        assert_same_bits(pool, original.cpu())
    done.synchronize()
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)


@CUDA
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_tensors_on_another_device_than_the_current_one():
    pools, intermediates, slots, steps, rows = make_call("cuda:1", seed=6)
    expected = [pool.clone() for pool in pools]
    loop_update([p.view for p in expected], intermediates, slots, steps, src_rows=rows)
    with torch.cuda.device(0):
        mamba_state_ext.update([p.view for p in pools], intermediates, slots, steps, src_rows=rows)
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool.parent, reference.parent)
    with pytest.raises(ValueError, match="dst_slots is on cuda:0 but states\\[0\\] is on cuda:1"):
        mamba_state_ext.update(
            [p.view for p in pools], intermediates, slots.to("cuda:0"), steps, src_rows=rows
        )
