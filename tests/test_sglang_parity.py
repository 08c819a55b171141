"""mamba_state_ext.integrations.sglang against the own kernels of every SGLang release it takes
over (SGLANG_RELEASES), bit for bit, on SGLang's own data layouts: identical copies of the pools
go through the release's Triton kernels (under the Triton interpreter on the CPU) and through our
drop-ins, and every byte of every pool must agree. The kernels come from each release's wheel
(tests/sglang_kernels.py says where it looks; scripts/install_sglang.sh downloads them); without
them these tests skip and say why.
"""

from __future__ import annotations

import inspect
import types

import pytest
import sglang_kernels
import torch
from helpers import DEVICES, fill_random, run_python, seed_of
from sglang_kernels import looks_cuda

from mamba_state_ext.integrations import sglang as ours
from mamba_state_ext.integrations import sglang_plugin
from mamba_state_ext.integrations.sglang import SGLANG_RELEASES

LAYERS, SLOTS, BATCH, DRAFTS, CONV_KERNEL = 2, 13, 5, 4, 4
HEADS, HEAD_DIM, CONV_DIM = 2, 8, 24  # SSM state [HEADS, HEAD_DIM, HEAD_DIM]; conv [CONV_DIM, 3]

_loaded = {}
RELEASES = pytest.mark.parametrize("release", SGLANG_RELEASES)


def sglang_module(device: str, release: str):
    """The release's scatter module for this device's tensors, or a skip that says why."""
    if (device, release) not in _loaded:
        try:
            _loaded[device, release] = sglang_kernels.load_scatter_kernels(
                release, on_cpu=device == "cpu"
            )
        except sglang_kernels.Unavailable as error:
            _loaded[device, release] = str(error)
    if isinstance(_loaded[device, release], str):
        pytest.skip(_loaded[device, release])
    return _loaded[device, release]


def token_major(release: str):
    try:
        return sglang_kernels.load_token_major(release)
    except sglang_kernels.Unavailable as error:
        pytest.skip(str(error))


def make_pools(layout: str, ssm_dtype, generator, device, release=SGLANG_RELEASES[-1]):
    """SGLang's MambaPool state: `temporal` [L, C, H, D, D] and one `conv` [L, C, conv_dim, K-1];
    "dense": a tensor each; "envelope": interleaved views of one uint8 buffer, built by SGLang's
    build_mamba_entry_views (every layer of both kinds of a slot in one entry)."""
    ssm_shape, conv_shape = (HEADS, HEAD_DIM, HEAD_DIM), (CONV_DIM, CONV_KERNEL - 1)
    if layout == "dense":
        temporal = fill_random(torch.empty(LAYERS, SLOTS, *ssm_shape, dtype=ssm_dtype), generator)
        conv = fill_random(torch.empty(LAYERS, SLOTS, *conv_shape, dtype=torch.bfloat16), generator)
        return temporal.to(device), [conv.to(device)]
    module = token_major(release)
    spec = dict(
        layer_num=LAYERS,
        conv_state_shapes=[conv_shape],
        conv_dtype=torch.bfloat16,
        temporal_state_shape=ssm_shape,
        temporal_dtype=ssm_dtype,
    )
    entry_bytes = module.mamba_entry_bytes(**spec)
    if "entry_bytes" in inspect.signature(module.build_mamba_entry_views).parameters:
        # 0.5.23: the slot stride is the caller's, aligned as its pools align it.
        entry_bytes = module.align_entry_bytes(entry_bytes)
        spec["entry_bytes"] = entry_bytes
    raw = torch.randint(0, 256, (SLOTS * entry_bytes,), dtype=torch.uint8, generator=generator)
    raw = raw.to(device)
    convs, temporal = module.build_mamba_entry_views(raw, max_slots=SLOTS, **spec)
    for view in [temporal, *convs]:  # valid floats everywhere (random bytes may hold NaNs)
        view.copy_(fill_random(torch.empty(view.shape, dtype=view.dtype), generator))
    return temporal, convs


def make_caches(conv_cache: str, ssm_dtype, rows, generator, device):
    """intermediate_ssm [L, R, T, H, D, D] and the conv window cache: "dense" [L, R, T, dim, K-1],
    or "window", SGLang's de-duplicated layout (_allocate_deduplicated_conv_window): T
    overlapping windows over one [L, R, dim, T+K-2] buffer, strides (s0, s1, window stride,
    *physical strides)."""
    ssm = fill_random(
        torch.empty(LAYERS, rows, DRAFTS, HEADS, HEAD_DIM, HEAD_DIM, dtype=ssm_dtype), generator
    ).to(device)
    if conv_cache == "dense":
        window = fill_random(
            torch.empty(LAYERS, rows, DRAFTS, CONV_DIM, CONV_KERNEL - 1, dtype=torch.bfloat16),
            generator,
        ).to(device)
        return ssm, window
    phys = fill_random(
        torch.empty(LAYERS, rows, CONV_DIM, DRAFTS + CONV_KERNEL - 2, dtype=torch.bfloat16),
        generator,
    ).to(device)
    physical = phys.stride()[2:]
    window = phys.as_strided(
        (LAYERS, rows, DRAFTS, CONV_DIM, CONV_KERNEL - 1),
        (phys.stride(0), phys.stride(1), physical[1], *physical),
    )
    return ssm, window


def mamba_caches(temporal, convs, ssm_cache, window):
    return types.SimpleNamespace(
        temporal=temporal, intermediate_ssm=ssm_cache, conv=convs, intermediate_conv_window=[window]
    )


def for_sglang(temporal, convs):
    """Pools as SGLang's kernels take them here: on the CPU, tensors that say they are on CUDA."""
    return looks_cuda(temporal), [looks_cuda(conv) for conv in convs]


def clone_pools(temporal, convs):
    """An identical copy; for the envelope, of the whole buffer, views and all."""
    base = temporal._base if temporal._base is not None else None
    if base is None:
        return temporal.clone(), [conv.clone() for conv in convs]
    copy = base.clone()
    view = lambda t: copy.view(t.dtype).as_strided(t.shape, t.stride(), t.storage_offset())  # noqa: E731
    return view(temporal), [view(conv) for conv in convs]


def assert_pools_equal(a, b):
    (temporal_a, convs_a), (temporal_b, convs_b) = a, b
    for x, y in [(temporal_a, temporal_b), *zip(convs_a, convs_b)]:
        assert torch.equal(x.contiguous().view(torch.uint8), y.contiguous().view(torch.uint8))
    if temporal_a._base is not None:  # envelope: every byte of the buffer, padding included
        assert torch.equal(temporal_a._base.view(torch.uint8), temporal_b._base.view(torch.uint8))


def make_indices(generator, device, *, track: bool, padding: int):
    """SGLang's verify batch: state_indices (PAD_SLOT_ID -1 on padding), last accepted step
    (-1: none), and the track slots and steps (-1: none)."""
    slots = torch.randperm(SLOTS, generator=generator)
    state_indices = slots[:BATCH].clone()
    steps = torch.randint(-1, DRAFTS, (BATCH,), generator=generator)
    steps[0] = DRAFTS - 1
    track_indices = slots[BATCH : 2 * BATCH].clone()
    track_steps = torch.randint(-1, DRAFTS, (BATCH,), generator=generator)
    if padding:
        pad = lambda t, value: torch.cat([t, torch.full((padding,), value)])  # noqa: E731
        state_indices, steps = pad(state_indices, -1), pad(steps, -1)
        track_indices, track_steps = pad(track_indices, -1), pad(track_steps, -1)
    moved = [t.to(device) for t in (state_indices, steps, track_indices, track_steps)]
    return moved if track else moved[:2] + [None, None]


@RELEASES
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ssm_dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize(
    "layout,conv_cache", [("dense", "dense"), ("dense", "window"), ("envelope", "window")]
)
@pytest.mark.parametrize("rows", ["batch", "explicit"])
@pytest.mark.parametrize("track", [False, True], ids=["commit", "commit+track"])
def test_scatter_after_verify(release, device, ssm_dtype, layout, conv_cache, rows, track):
    sglang = sglang_module(device, release)
    generator = torch.Generator().manual_seed(seed_of(layout, conv_cache, rows, track))
    temporal, convs = make_pools(layout, ssm_dtype, generator, device, release)
    padding = 2 if rows == "batch" else 0
    num_rows = BATCH + padding + 1  # SGLang's caches have size + 1 rows
    ssm_cache, window = make_caches(conv_cache, ssm_dtype, num_rows, generator, device)
    indices = make_indices(generator, device, track=track, padding=padding)
    src_rows = None
    if rows == "explicit":
        src_rows = torch.randperm(num_rows, generator=generator)[:BATCH].to(device)
    theirs, mine = clone_pools(temporal, convs), clone_pools(temporal, convs)
    sglang.scatter_mamba_states_after_mtp_verify(
        mamba_caches(*for_sglang(*theirs), ssm_cache, window), *indices, src_rows
    )
    ours.scatter_mamba_states_after_mtp_verify(
        mamba_caches(*mine, ssm_cache, window), *indices, src_rows
    )
    assert_pools_equal(theirs, mine)
    untouched = clone_pools(temporal, convs)
    with pytest.raises(AssertionError):  # the commit did something
        assert_pools_equal(untouched, mine)


def compare_track_all_layers(device, layout, check_freed_slots, release):
    sglang = sglang_module(device, release)
    generator = torch.Generator().manual_seed(5)
    temporal, convs = make_pools(layout, torch.float32, generator, device, release)
    batch = BATCH + 2  # the kernels read only the first batch_size entries
    slots = torch.randperm(SLOTS, generator=generator)
    cache_indices = slots[:batch].to(device)
    track_indices = slots[batch : 2 * batch].to(device)
    mask = (torch.arange(batch) % 3 != 1).to(device)
    if check_freed_slots:  # freed slots, which only this mode allows
        cache_indices[0] = -1
        track_indices[2] = -1
    theirs, mine = clone_pools(temporal, convs), clone_pools(temporal, convs)
    for (pool_ssm, pool_convs), track in [
        (for_sglang(*theirs), sglang.track_mamba_states_all_layers),
        (mine, ours.track_mamba_states_all_layers),
    ]:
        track(
            pool_convs[0],
            pool_ssm,
            cache_indices,
            mask,
            track_indices,
            BATCH,
            check_freed_slots=check_freed_slots,
        )
    assert_pools_equal(theirs, mine)


@RELEASES
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["dense", "envelope"])
@pytest.mark.parametrize("check_freed_slots", [False, True])
def test_track_all_layers(release, device, layout, check_freed_slots):
    if device == "cuda":
        compare_track_all_layers(device, layout, check_freed_slots, release)
        return
    # SGLang's track kernel calls triton.language functions that are themselves @triton.jit
    # (tl.sum, tl.cumsum); the interpreter runs them only if TRITON_INTERPRET=1 was set before
    # triton was first imported: a fresh interpreter.
    sglang_module(device, release)  # these two skip, with the reason, where the child would fail
    if layout == "envelope":
        token_major(release)
    process = run_python(
        f"import sys; sys.path.insert(0, 'tests'); import test_sglang_parity as t; "
        f"t.compare_track_all_layers('cpu', {layout!r}, {check_freed_slots}, {release!r})",
        TRITON_INTERPRET="1",
    )
    assert process.returncode == 0, process.stdout + process.stderr


def test_a_wrong_step_is_detected():
    """The negative control: our commit with one step changed must not match SGLang's."""
    sglang = sglang_module("cpu", SGLANG_RELEASES[-1])
    generator = torch.Generator().manual_seed(9)
    temporal, convs = make_pools("dense", torch.float32, generator, "cpu")
    ssm_cache, window = make_caches("window", torch.float32, BATCH + 1, generator, "cpu")
    state_indices, steps, _, _ = make_indices(generator, "cpu", track=False, padding=0)
    theirs, mine = clone_pools(temporal, convs), clone_pools(temporal, convs)
    sglang.scatter_mamba_states_after_mtp_verify(
        mamba_caches(*for_sglang(*theirs), ssm_cache, window), state_indices, steps, None, None
    )
    wrong = steps.clone()
    wrong[0] = DRAFTS - 2  # was DRAFTS - 1
    ours.scatter_mamba_states_after_mtp_verify(
        mamba_caches(*mine, ssm_cache, window), state_indices, wrong, None, None
    )
    with pytest.raises(AssertionError):
        assert_pools_equal(theirs, mine)


def test_envelope_views_share_no_byte():
    """SGLang's envelope: the conv and SSM pools interleave in one buffer without sharing a
    byte, so the operator accepts them; a view that does share bytes is still refused."""
    generator = torch.Generator().manual_seed(3)
    temporal, convs = make_pools("envelope", torch.float32, generator, "cpu")
    ssm_cache, window = make_caches("window", torch.float32, BATCH + 1, generator, "cpu")
    slots, steps = torch.tensor([1, 4]), torch.tensor([0, 3])
    torch.ops.mamba_state.update([temporal, convs[0]], [ssm_cache, window], slots, steps)
    assert torch.equal(temporal[:, 4].view(torch.int32), ssm_cache[:, 1, 3].view(torch.int32))
    shifted = temporal.as_strided(
        temporal.shape, temporal.stride(), temporal.storage_offset() - 8
    )  # into the conv part
    with pytest.raises(ValueError, match="states\\[0\\] shares memory with states\\[1\\]"):
        torch.ops.mamba_state.update([shifted, convs[0]], [ssm_cache, window], slots, steps)


def function_call(name: str, device: str, seed: int = 0):
    """One call of SGLang's function `name` in its caller's shapes: the pools it writes, dense
    (temporal float32, one bfloat16 conv window), and the call's arguments for given pools."""
    generator = torch.Generator().manual_seed(seed + sum(map(ord, name)))
    temporal, convs = make_pools("dense", torch.float32, generator, device)
    ssm_cache, window = make_caches("window", torch.float32, BATCH + 1, generator, device)
    slots, steps, track_slots, track_steps = make_indices(generator, device, track=True, padding=0)
    cache_indices, tracked = slots, (torch.arange(BATCH) % 2 == 0).to(device)
    calls = {
        "scatter_mamba_states_after_mtp_verify": lambda temporal, conv: (
            mamba_caches(temporal, [conv], ssm_cache, window),
            slots,
            steps,
            track_slots,
            track_steps,
        ),
        "track_mamba_states_all_layers": lambda temporal, conv: (
            conv,
            temporal,
            cache_indices,
            tracked,
            track_slots,
            BATCH,
        ),
        "track_mamba_states_if_needed": lambda temporal, conv: (  # one layer's pools
            conv[1],
            temporal[1],
            cache_indices,
            tracked,
            track_slots,
            BATCH,
        ),
        "fused_mamba_state_scatter_with_mask": lambda temporal, conv: (
            temporal,
            ssm_cache,
            slots,
            steps,
        ),
        "fused_conv_window_scatter_with_mask": lambda temporal, conv: (conv, window, slots, steps),
        "fused_conv_window_scatter_multi": lambda temporal, conv: (
            [(conv, window)],
            slots,
            steps,
            track_slots,
            track_steps,
        ),
    }
    return [temporal, convs[0]], calls[name]


TAKEN_OVER = [
    "scatter_mamba_states_after_mtp_verify",
    "track_mamba_states_all_layers",
    "track_mamba_states_if_needed",
    "fused_mamba_state_scatter_with_mask",
    "fused_conv_window_scatter_with_mask",
    "fused_conv_window_scatter_multi",
]


def compare_functions(
    sglang_function, our_function, name: str, device: str, *, ours_looks_cuda: bool = False
) -> None:
    """SGLang's function and ours, on identical copies of the pools: every byte the same, and
    something written. ours_looks_cuda: our function too gets pools that say they are on CUDA
    (SGLang's names, hooked by the plugin, send those to ours)."""
    pools, arguments = function_call(name, device)
    theirs, mine = [pool.clone() for pool in pools], [pool.clone() for pool in pools]
    sglang_function(*arguments(*[looks_cuda(pool) for pool in theirs]))
    our_function(*arguments(*[looks_cuda(pool) if ours_looks_cuda else pool for pool in mine]))
    for their_pool, my_pool in zip(theirs, mine):
        assert torch.equal(their_pool.view(torch.uint8), my_pool.view(torch.uint8)), name
    assert any(not torch.equal(pool, before) for pool, before in zip(mine, pools)), name


@RELEASES
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", TAKEN_OVER[2:])
def test_the_single_kernels(release, device, name):
    """The functions the SGLang plugin also takes over (its callers use them one by one)."""
    if device == "cpu" and name == "track_mamba_states_if_needed":
        # tl.sum in its kernel is itself @triton.jit: TRITON_INTERPRET from the process start.
        sglang_module(device, release)
        process = run_python(
            f"import test_sglang_parity as t; t.compare_functions("
            f"t.sglang_module('cpu', {release!r}).{name}, getattr(t.ours, {name!r}), "
            f"{name!r}, 'cpu')",
            TRITON_INTERPRET="1",
        )
        assert process.returncode == 0, process.stdout + process.stderr
        return
    sglang = sglang_module(device, release)
    compare_functions(getattr(sglang, name), getattr(ours, name), name, device)


@RELEASES
@pytest.mark.parametrize("name", sorted(sglang_plugin.TAKEN_OVER))
def test_the_drop_ins_have_sglangs_signatures(release, name):
    """Same parameter names, order and defaults as SGLang's functions: the plugin passes SGLang's
    callers' arguments through, by position or by name."""

    def shape(function):
        return [
            (parameter.name, parameter.kind, parameter.default)
            for parameter in inspect.signature(function).parameters.values()
        ]

    assert shape(getattr(ours, name)) == shape(getattr(sglang_module("cpu", release), name))
