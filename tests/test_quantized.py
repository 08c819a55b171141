"""Quantized state pools (docs/contract.md): int8 and float8 pools with float32 scales, committed
from full-precision caches (quantized on commit, group by group) or from quantized caches (copied
as they are), on every implementation, bit for bit against reference.loop_update, over the whole
storage of every pool and scale tensor (so that a byte written outside the selected slots fails).
The formula itself (quantization.quantize) is held to a group-by-group loop of its own."""

from __future__ import annotations

import functools
import itertools
import math
import os
import platform
import subprocess
import sys

import pytest
import torch
from helpers import (
    COMPILED,
    CUDA,
    IMPLEMENTATIONS,
    assert_same_bits,
    implementation_params,
    make_indices,
    make_intermediate,
    make_pool,
    run_cuda_grid_on_cpu,
    seed_of,
)

import mamba_state_ext
from mamba_state_ext import ops
from mamba_state_ext.quantization import QUANTIZED_DTYPES, dtype_max, group_extents, quantize
from mamba_state_ext.reference import loop_update

LAYERS, SLOTS, ROWS, STEPS = 3, 11, 7, 5
SOURCES = (torch.float32, torch.float16, torch.bfloat16)
# (state shape E, scale shape S): SGLang #40706's [H, V/32] over [H, V, K]; vLLM's [H, D] over
# [H, D, N]; one scale for the whole state; a scale per element; blocks that are not runs; a
# group that is not a power-of-two number of 16-byte units; groups of 1100 values (more than the
# CPU kernel's 512-byte prefetch chunk, not a whole number of its chunks or of its AVX-512 loop's
# 64 values an iteration, one or three groups to a batch).
GROUPS = {
    "sglang": ((2, 64, 16), (2, 2)),
    "vllm": ((2, 8, 16), (2, 8)),
    "whole": ((3, 40), ()),
    "element": ((4, 6), (4, 6)),
    "blocks": ((4, 6, 5), (2, 3)),
    "odd": ((6, 100), (3,)),
    "large": ((2, 1100), (2,)),
    "none": ((0, 8), (0,)),  # 0 groups along a dim of size 0
    "empty": ((4, 0), (4,)),  # groups of no element, whose scales are 0
}


def raw(name: str, states, caches, state_scales, intermediate_scales, quant_max) -> dict:
    """The scale arguments as the implementation takes them (the wrapper: aligned with the kinds;
    the others: the operator's, aligned with scaled_kinds)."""
    if name == "wrapper":
        return dict(
            state_scales=state_scales, intermediate_scales=intermediate_scales, quant_max=quant_max
        )
    return ops.raw_scales(states, caches, state_scales, intermediate_scales, quant_max)


class Kind:
    """One kind of a test call: its pool (and scales) and its cache (and scales, if quantized)."""

    def __init__(
        self,
        state_shape,
        groups,
        pool_dtype,
        cache_dtype,
        generator,
        device,
        *,
        layout="contiguous",
        quantized_cache=False,
    ):
        self.pool = make_pool((LAYERS, SLOTS, *state_shape), pool_dtype, layout, generator, device)
        self.cache = make_intermediate(
            (LAYERS, ROWS, STEPS, *state_shape),
            cache_dtype,
            layout,
            generator,
            device,
            finite=True,
        )
        self.scales = self.cache_scales = None
        if groups is not None:
            scale_layout = "sliced" if layout == "sliced" else "contiguous"
            self.scales = make_pool(
                (LAYERS, SLOTS, *groups), torch.float32, scale_layout, generator, device
            )
            if quantized_cache:
                self.cache_scales = make_intermediate(
                    (LAYERS, ROWS, STEPS, *groups),
                    torch.float32,
                    scale_layout,
                    generator,
                    device,
                    finite=True,
                )

    def storages(self):
        return [self.pool] + ([self.scales] if self.scales is not None else [])


def commit(name, kinds, slots, steps, rows, quant_max=None, **options):
    states = [kind.pool.view for kind in kinds]
    caches = [kind.cache for kind in kinds]
    state_scales = [None if k.scales is None else k.scales.view for k in kinds]
    cache_scales = None
    if any(k.cache_scales is not None for k in kinds):
        cache_scales = [k.cache_scales for k in kinds]
    scales = raw(name, states, caches, state_scales, cache_scales, quant_max)
    IMPLEMENTATIONS[name](states, caches, slots, steps, src_rows=rows, **scales, **options)


def expected(kinds, slots, steps, rows, quant_max=None, **options):
    """Every kind's storages after the reference's commit, on copies."""
    copies = [[storage.clone() for storage in kind.storages()] for kind in kinds]
    states = [storages[0].view for storages in copies]
    state_scales = [storages[1].view if len(storages) > 1 else None for storages in copies]
    cache_scales = None
    if any(k.cache_scales is not None for k in kinds):
        cache_scales = [k.cache_scales for k in kinds]
    loop_update(
        states,
        [kind.cache for kind in kinds],
        slots,
        steps,
        src_rows=rows,
        state_scales=state_scales,
        intermediate_scales=cache_scales,
        quant_max=quant_max,
        **options,
    )
    return copies


def assert_storages_equal(kinds, expected_copies):
    for kind, copies in zip(kinds, expected_copies):
        for storage, copy in zip(kind.storages(), copies):
            assert_same_bits(storage.parent, copy.parent)


def check(name, device, kinds, *, seed=0, quant_max=None, **options):
    generator = torch.Generator().manual_seed(seed)
    slots, steps, rows = make_indices(ROWS, SLOTS, ROWS, STEPS, generator, device=device)
    want = expected(kinds, slots, steps, rows, quant_max, **options)
    commit(name, kinds, slots, steps, rows, quant_max, **options)
    assert_storages_equal(kinds, want)
    return slots, steps, rows


# The formula, held to a loop over the groups of its own.


def quantize_by_loops(x, groups, dtype, qmax):
    """quantize, one group at a time, its indices worked out separately."""
    state = x.shape
    extents = group_extents(state, groups)
    q = torch.zeros(state, dtype=dtype)
    scales = torch.zeros(groups, dtype=torch.float32) if groups else torch.zeros(())
    qmax_float = torch.tensor(qmax, dtype=torch.float32)
    for group in itertools.product(*(range(g) for g in groups)):
        block = tuple(
            slice(group[d] * extents[d], (group[d] + 1) * extents[d])
            if d < len(groups)
            else slice(None)
            for d in range(len(state))
        )
        values = x[block].float()
        amax = values.abs().max() if values.numel() else torch.tensor(0.0)
        scale = amax / qmax_float
        scales[group] = scale
        if scale == 0:
            continue
        clamped = (values / scale).clamp(-qmax, qmax)
        q[block] = torch.round(clamped).to(dtype) if dtype == torch.int8 else clamped.to(dtype)
    return q, scales


@pytest.mark.parametrize("dtype", QUANTIZED_DTYPES, ids=str)
@pytest.mark.parametrize("groups_name", list(GROUPS))
@pytest.mark.parametrize("source", SOURCES, ids=str)
def test_the_formula_group_by_group(dtype, groups_name, source):
    state, groups = GROUPS[groups_name]
    generator = torch.Generator().manual_seed(7)
    x = make_pool((1, 1, *state), source, "contiguous", generator, finite=True).view[0, 0]
    for qmax in (dtype_max(dtype), 100.0):
        q, scales = quantize(x, len(state), groups, dtype, qmax)
        want_q, want_scales = quantize_by_loops(x, groups, dtype, qmax)
        assert torch.equal(q.view(torch.uint8), want_q.view(torch.uint8))
        assert_same_bits(scales, want_scales)


def test_the_formula_on_its_edges():
    """A group of zeros, one whose scale underflows, one with a NaN, one with an infinity."""
    x = torch.tensor([[0.0, -0.0], [1e-45, 0.0], [math.nan, 1.0], [math.inf, 1.0]])
    q, scales = quantize(x, 2, (4,), torch.float8_e4m3fn, 448.0)
    assert scales[0] == 0 and scales[1] == 0  # amax / 448 underflows for 1e-45
    assert q[:2].view(torch.uint8).tolist() == [[0, 0], [0, 0]]  # zeros, all bits 0
    assert math.isnan(scales[2]) and math.isinf(scales[3])


# The implementations, against the reference.


@pytest.mark.parametrize("name,device", implementation_params())
@pytest.mark.parametrize("dtype", QUANTIZED_DTYPES, ids=str)
@pytest.mark.parametrize("source", SOURCES, ids=str)
@pytest.mark.parametrize("groups_name", list(GROUPS))
def test_quantize_on_commit(name, device, dtype, source, groups_name):
    generator = torch.Generator().manual_seed(seed_of(str(dtype), str(source), groups_name))
    state, groups = GROUPS[groups_name]
    kinds = [Kind(state, groups, dtype, source, generator, device)]
    check(name, device, kinds)


@pytest.mark.parametrize("name,device", implementation_params())
@pytest.mark.parametrize("layout", ["sliced", "permuted"])
@pytest.mark.parametrize("groups_name", ["sglang", "vllm", "blocks"])
def test_strided_pools_and_caches(name, device, layout, groups_name):
    generator = torch.Generator().manual_seed(3)
    state, groups = GROUPS[groups_name]
    kinds = [
        Kind(state, groups, torch.float8_e4m3fn, torch.bfloat16, generator, device, layout=layout)
    ]
    check(name, device, kinds)


@pytest.mark.parametrize("name,device", implementation_params())
@pytest.mark.parametrize(
    "state,groups,layout",
    [
        ((4, 96, 128), (4, 3), "contiguous"),  # groups of 16 KiB of float32 source
        ((4, 96, 128), (4, 96), "contiguous"),  # groups of 128 values
        ((4, 96, 128), (4, 96), "sliced"),  # the same groups, not one run: group by group
    ],
    ids=["large-groups", "rows", "rows-sliced"],
)
def test_states_larger_than_a_piece_of_work(name, device, state, groups, layout):
    """States of 192 KiB of float32, more than one of the CPU kernel's pieces of work, so that
    pieces begin and end inside a state (and inside a run of groups)."""
    generator = torch.Generator().manual_seed(5)
    kinds = [
        Kind(state, groups, torch.int8, torch.float32, generator, device, layout=layout),
        Kind(state, groups, torch.float8_e5m2, torch.bfloat16, generator, device, layout=layout),
    ]
    check(name, device, kinds)


@pytest.mark.parametrize("name,device", implementation_params())
def test_plain_quantized_and_quantized_cache_kinds_in_one_call(name, device):
    """A plain kind, a kind quantized on commit and one whose cache is quantized already (its
    values and scales copied as they are), with track copies."""
    generator = torch.Generator().manual_seed(4)
    kinds = [
        Kind((6, 3), None, torch.bfloat16, torch.float32, generator, device),
        Kind((2, 64, 16), (2, 2), torch.float8_e4m3fn, torch.float32, generator, device),
        Kind((4, 8), (4,), torch.int8, torch.int8, generator, device, quantized_cache=True),
    ]
    slots = torch.tensor([3, 0, -1, 5, 1], device=device)
    steps = torch.tensor([2, -1, 4, 0, 1], device=device)
    rows = torch.tensor([6, 2, 0, 4, 1], device=device)
    track_slots = torch.tensor([10, -1, 9, 8, 7], device=device)  # slots the commit leaves
    track_steps = torch.tensor([1, 2, -1, 0, 4], device=device)
    options = dict(track_slots=track_slots, track_steps=track_steps)
    want = expected(kinds, slots, steps, rows, [None, 240.0, None], **options)
    commit(name, kinds, slots, steps, rows, [None, 240.0, None], **options)
    assert_storages_equal(kinds, want)


@pytest.mark.parametrize("quant_max", [None, 100.0, [None, 240.0]], ids=str)
@pytest.mark.parametrize("name", ["op", "wrapper", "fallback", "grid"])
def test_quant_max(name, quant_max):
    """qmax: each dtype's largest value, one for every quantized kind, or one per kind (SGLang
    #40706's 240 for float8_e4m3fn)."""
    if name == "op" and mamba_state_ext.backend().name != "compiled":
        pytest.skip("needs the compiled library")
    generator = torch.Generator().manual_seed(5)
    kinds = [
        Kind((2, 8, 16), (2, 8), torch.int8, torch.float32, generator, "cpu"),
        Kind((2, 8, 16), (2, 8), torch.float8_e4m3fn, torch.float16, generator, "cpu"),
    ]
    slots, _, _ = check(name, "cpu", kinds, quant_max=quant_max)
    qmax = quant_max[1] if isinstance(quant_max, list) else quant_max or 448.0
    assert kinds[1].pool.view[:, slots[slots >= 0]].float().abs().max() <= qmax


def test_one_quant_max_for_a_call_with_no_quantized_kind():
    """One number for every quantized kind: with none, the commit is the plain one, whatever the
    number (an int too large for a float included)."""
    generator = torch.Generator().manual_seed(7)
    cache = torch.randn(2, 4, 3, 6, 5, generator=generator)
    pools = [torch.zeros(2, 7, 6, 5) for _ in range(3)]
    slots, steps = torch.tensor([4, -1, 0, 6]), torch.tensor([2, 1, -1, 0])
    mamba_state_ext.update(pools[0], cache, slots, steps, quant_max=240.0)
    mamba_state_ext.update(pools[1], cache, slots, steps)
    mamba_state_ext.update(pools[2], cache, slots, steps, quant_max=10**400)
    assert_same_bits(pools[0], pools[1])
    assert_same_bits(pools[2], pools[1])
    assert pools[0][:, 4].equal(cache[:, 0, 2]) and pools[0][:, 6].equal(cache[:, 3, 0])
    assert not pools[0][:, [0, 1, 2, 3, 5]].any()  # the slots no entry writes


@pytest.mark.parametrize("name,device", implementation_params())
@pytest.mark.parametrize("width", [8, 72])
def test_groups_of_zeros_and_groups_whose_scale_underflows(name, device, width):
    """Scale 0 and zeros (all bits 0) for a group of zeros (-0.0 too) and for one whose
    amax / qmax underflows to 0, before groups that are neither."""
    generator = torch.Generator().manual_seed(6)
    kinds = [Kind((4, width), (4,), torch.float8_e4m3fn, torch.float32, generator, device)]
    kinds[0].cache[:, :, :, 0] = -0.0
    kinds[0].cache[:, :, :, 1] = 1e-45
    slots, _, _ = check(name, device, kinds)
    applied = slots[slots >= 0].cpu()
    pool = kinds[0].pool.view.cpu()[:, applied]
    scales = kinds[0].scales.view.cpu()[:, applied]
    assert not scales[..., :2].any() and not pool[..., :2, :].view(torch.uint8).any()


@pytest.mark.parametrize("name,device", implementation_params())
@pytest.mark.parametrize("source", [torch.float32, torch.bfloat16], ids=str)
def test_groups_so_small_that_qmax_over_amax_overflows(name, device, source):
    """Groups whose amax is so small (1e-44 to 1.5e-36) that qmax / amax is infinite or amax /
    qmax subnormal: the contract's division still gives each value its own integer (1e-37 / 3
    is 42 at amax 1e-37), where a product x * (qmax / amax) would give +-qmax or, for a zero,
    NaN. 72 values a group, past the first iteration of the CPU kernel's AVX-512 loop (64
    values), where an FMA quotient by an infinite 1 / scale would give NaN."""
    generator = torch.Generator().manual_seed(seed_of(source))
    amaxes = torch.tensor([1e-44, 1e-40, 1e-38, 1e-37, 1.5e-36]).to(source).float()
    for dtype in QUANTIZED_DTYPES:
        fractions = torch.empty(amaxes.numel(), 71).uniform_(-1, 1, generator=generator)
        fractions[:, :3] = torch.tensor([1 / 3, 0.0, -0.5])
        values = torch.cat([amaxes[:, None], fractions * amaxes[:, None]], dim=1)
        kinds = [Kind((amaxes.numel(), 72), (amaxes.numel(),), dtype, source, generator, device)]
        kinds[0].cache.copy_(values.to(source).to(device).expand_as(kinds[0].cache))
        check(name, device, kinds)


def midpoints_and_neighbours(dtype) -> torch.Tensor:
    """The values of the pool's dtype, the midpoints between neighbours and the floats up to two
    ulps beside each midpoint, as float32."""
    qmax = dtype_max(dtype)
    if dtype == torch.int8:
        ladder = torch.arange(-127.0, 128.0)
    else:
        every = torch.arange(256, dtype=torch.uint8).view(dtype).float()
        ladder = every[torch.isfinite(every)].unique()
        ladder = ladder[ladder.abs() <= qmax]
    midpoints = (ladder[1:] + ladder[:-1]) / 2
    bits = midpoints.view(torch.int32)
    beside = [(bits + step).view(torch.float32) for step in (-2, -1, 1, 2)]
    return torch.cat([midpoints, *beside, ladder])


@pytest.mark.parametrize("name,device", implementation_params())
def test_rounding_ties_as_torch_converts(name, device):
    """Groups whose scale is 1 (amax = qmax), holding the midpoints between neighbouring values
    of the pool's dtype and the floats beside them: each must round as Tensor.to does (a
    midpoint to even)."""
    for dtype in QUANTIZED_DTYPES:
        qmax = dtype_max(dtype)
        width = 64
        values = midpoints_and_neighbours(dtype)
        values = values[: values.numel() // (width - 1) * (width - 1)].view(-1, width - 1)
        groups = torch.cat([torch.full((values.shape[0], 1), qmax), values], dim=1)
        state = (groups.shape[0], width)
        generator = torch.Generator().manual_seed(8)
        kinds = [Kind(state, (groups.shape[0],), dtype, torch.float32, generator, device)]
        kinds[0].cache.copy_(groups.to(device).expand_as(kinds[0].cache))
        check(name, device, kinds)


@pytest.mark.parametrize("name,device", implementation_params())
@pytest.mark.parametrize("source", SOURCES, ids=str)
def test_quotients_on_and_beside_midpoints_for_scales_other_than_1(name, device, source):
    """Groups of random scales whose values x make x / scale a midpoint between neighbouring
    values of the pool's dtype or a float up to two ulps beside one (as near as the source's
    precision allows): where any quotient but the contract's division, x * (1 / scale) among
    them, rounds otherwise (the CPU kernel's AVX-512 loops correct that product by FMA,
    docs/kernel.md)."""
    generator = torch.Generator().manual_seed(seed_of(source))
    width = 64
    for dtype in QUANTIZED_DTYPES:
        qmax = dtype_max(dtype)
        quotients = midpoints_and_neighbours(dtype)
        quotients = quotients[quotients.abs() < qmax]
        quotients = quotients[: quotients.numel() // (width - 1) * (width - 1)].view(-1, width - 1)
        exponents = torch.empty(quotients.shape[0], 1).uniform_(-1, 1, generator=generator)
        amaxes = torch.exp(exponents * (8 if source == torch.float16 else 30))  # finite in source
        values = torch.cat([amaxes, quotients * (amaxes / qmax)], dim=1)
        state = (values.shape[0], width)
        kinds = [Kind(state, (values.shape[0],), dtype, source, generator, device)]
        kinds[0].cache.copy_(values.to(source).to(device).expand_as(kinds[0].cache))
        check(name, device, kinds)


@functools.cache
def groups_whose_products_round_otherwise(source, dtype, width=64, count=64) -> torch.Tensor:
    """Groups of values of the source dtype (as float32), each led by its amax, where for at
    least one value x the product x * (qmax / amax) quantizes to another value of the pool's
    dtype than the contract's x / (amax / qmax), found by search over random amaxes."""
    generator = torch.Generator().manual_seed(seed_of(source, dtype))
    qmax = dtype_max(dtype)

    def quantized(q):
        q = q.clamp(-qmax, qmax)
        return torch.round(q) if dtype == torch.int8 else q.to(dtype).float()

    found = []
    while sum(len(group) for group in found) < count:
        exponents = torch.empty(40_000, 1).uniform_(-1, 1, generator=generator)
        amaxes = torch.exp(exponents * (8 if source == torch.float16 else 30)).to(source).float()
        values = torch.empty(40_000, width - 1).uniform_(-1, 1, generator=generator) * amaxes
        values = values.to(source).float()
        differ = quantized(values / (amaxes / qmax)) != quantized(values * (qmax / amaxes))
        rows = differ.any(dim=1)
        found.append(torch.cat([amaxes[rows], values[rows]], dim=1))
    return torch.cat(found)[:count]


@pytest.mark.parametrize("name,device", implementation_params())
@pytest.mark.parametrize("source", SOURCES, ids=str)
def test_values_whose_products_round_otherwise(name, device, source):
    """Groups holding values x where a multiply by qmax / amax would store another value than
    the contract's division: every implementation must store the division's."""
    for dtype in QUANTIZED_DTYPES:
        groups = groups_whose_products_round_otherwise(source, dtype)
        generator = torch.Generator().manual_seed(seed_of(source, dtype))
        kinds = [Kind(tuple(groups.shape), (groups.shape[0],), dtype, source, generator, device)]
        kinds[0].cache.copy_(groups.to(source).to(device).expand_as(kinds[0].cache))
        check(name, device, kinds)


@pytest.mark.parametrize("name,device", implementation_params())
@pytest.mark.parametrize("source", [torch.float32, torch.bfloat16], ids=str)
def test_scales_at_the_edges_of_the_fma_quotients_range(name, device, source):
    """Groups whose scale lies just inside and just outside [2^-40, 2^40], where the CPU kernel's
    AVX-512 loops switch between the FMA quotient and the division (docs/kernel.md), holding
    +-0, the source's smallest subnormals, quotients below 2^-40 and quotients drawn from those on
    and beside midpoints between values of the pool's dtype (as near as the source's precision
    allows)."""
    generator = torch.Generator().manual_seed(seed_of(source))
    width = 64
    for dtype in QUANTIZED_DTYPES:
        qmax = dtype_max(dtype)
        edges = torch.tensor([2.0**-40, 2.0**40])
        ulp = 2.0**-7 if source == torch.bfloat16 else 2.0**-22  # one or two of the source's ulps
        amaxes = (edges[:, None] * qmax * torch.tensor([1 - ulp, 1.0, 1 + ulp])).flatten()
        amaxes = amaxes.to(source).float()
        scales = amaxes / qmax
        for edge in edges:
            assert (scales < edge).any() and (scales > edge).any(), (scales, edge)
        smallest = 2.0**-149 if source == torch.float32 else 2.0**-133  # subnormal
        unscaled = torch.tensor([-0.0, 0.0, smallest, -smallest]).expand(amaxes.numel(), 4)
        below = torch.tensor([2.0**-45, -(2.0**-50)])  # quotients below 2^-40
        quotients = midpoints_and_neighbours(dtype)
        quotients = quotients[quotients.abs() < qmax]
        picks = torch.randint(quotients.numel(), (amaxes.numel(), width - 7), generator=generator)
        scaled = torch.cat([quotients[picks], below.expand(amaxes.numel(), 2)], dim=1)
        values = torch.cat([amaxes[:, None], scaled * scales[:, None], unscaled], dim=1)
        kinds = [Kind((amaxes.numel(), width), (amaxes.numel(),), dtype, source, generator, device)]
        kinds[0].cache.copy_(values.to(source).to(device).expand_as(kinds[0].cache))
        check(name, device, kinds)


@pytest.mark.parametrize("name,device", implementation_params())
@pytest.mark.parametrize("width", [8, 72])
def test_non_finite_input_stays_in_its_group(name, device, width):
    """A NaN and an infinity, each in a group of their own between finite ones (at 72 values,
    past the first iteration of the CPU kernel's AVX-512 loop, 64 values): those groups' scales
    are not finite; every other group, slot and kind is what the reference writes."""
    generator = torch.Generator().manual_seed(9)
    kinds = [
        Kind((4, width), (4,), torch.int8, torch.float32, generator, device),
        Kind((6, 3), None, torch.float32, torch.float32, generator, device),
    ]
    finite_cache = kinds[0].cache.clone()
    kinds[0].cache[:, :, :, 1, width - 3] = math.nan
    kinds[0].cache[:, :, :, 2, width // 2] = math.inf
    slots, steps, rows = make_indices(ROWS, SLOTS, ROWS, STEPS, generator, device=device)
    dirty = kinds[0].cache
    kinds[0].cache = finite_cache  # the reference of the finite groups
    want = expected(kinds, slots, steps, rows)
    kinds[0].cache = dirty
    commit(name, kinds, slots, steps, rows)
    applied = (steps >= 0) & (slots >= 0)
    scales = kinds[0].scales.view[:, slots[applied]].cpu()
    assert torch.isnan(scales[..., 1]).all() and torch.isinf(scales[..., 2]).all()
    want_scales = want[0][1].view[:, slots[applied]].cpu()
    for group in (0, 3):
        assert_same_bits(scales[..., group], want_scales[..., group])
        got = kinds[0].pool.view[:, slots[applied], group].cpu().view(torch.uint8)
        assert torch.equal(got, want[0][0].view[:, slots[applied], group].cpu().view(torch.uint8))
    for storage, copy in zip(kinds[1].storages(), want[1]):
        assert_same_bits(storage.parent, copy.parent)
    # Slots nobody selected: untouched, scales and all.
    untouched = torch.ones(SLOTS, dtype=torch.bool)
    untouched[slots[applied].cpu()] = False
    assert_same_bits(kinds[0].scales.view.cpu()[:, untouched], want[0][1].view.cpu()[:, untouched])


@pytest.mark.parametrize(
    "name,device",
    [p for p in implementation_params() if "cpu" not in p.id or p.id.startswith("grid")],
)
def test_a_bad_entry_applies_nothing_not_even_its_scales(name, device):
    """Without a sync (the grid, CUDA): the bad entry is applied nowhere, its scales included,
    and entry_status says so."""
    generator = torch.Generator().manual_seed(10)
    kinds = [Kind((2, 8, 16), (2, 8), torch.float8_e4m3fn, torch.float32, generator, device)]
    slots, steps, rows = make_indices(
        ROWS, SLOTS, ROWS, STEPS, generator, device=device, skip_fraction=0
    )
    bad_slots = slots.clone()
    bad_slots[2] = SLOTS + 1
    good = torch.ones(ROWS, dtype=torch.bool, device=device)
    good[2] = False
    want = expected(kinds, slots[good], steps[good], rows[good])
    status = torch.full((ROWS,), -1, dtype=torch.int32, device=device)
    commit(name, kinds, bad_slots, steps, rows, entry_status=status)
    assert_storages_equal(kinds, want)
    assert status.tolist() == [1 if n == 2 else 0 for n in range(ROWS)]


def test_one_launch_for_two_quantized_kinds_and_a_plain_one():
    """The grid's launch plan: plain and quantized kinds in one launch, up to two quantized ones
    (the kernel's arguments hold two); a third takes a second launch."""
    generator = torch.Generator().manual_seed(11)
    kinds = [
        Kind((6, 3), None, torch.bfloat16, torch.bfloat16, generator, "cpu"),
        Kind((2, 64, 16), (2, 2), torch.float8_e4m3fn, torch.float32, generator, "cpu"),
        Kind((2, 8, 16), (2, 8), torch.int8, torch.bfloat16, generator, "cpu"),
    ]
    slots, steps, rows = make_indices(ROWS, SLOTS, ROWS, STEPS, generator)
    states = [kind.pool.view for kind in kinds]
    caches = [kind.cache for kind in kinds]
    scales = ops.raw_scales(
        states, caches, [None, kinds[1].scales.view, kinds[2].scales.view], None, None
    )
    launches = run_cuda_grid_on_cpu(states, caches, slots, steps, src_rows=rows, **scales)
    assert len(launches) == 1
    assert [s["path"] for s in launches[0]["states"]] == ["one_dim", "quantize", "quantize"]
    assert [s["group_units"] for s in launches[0]["states"]] == [0, 128, 2]
    kinds.append(Kind((3, 40), (), torch.float8_e5m2, torch.float16, generator, "cpu"))
    states.append(kinds[3].pool.view)
    caches.append(kinds[3].cache)
    scales = ops.raw_scales(
        states, caches, [None, *(kind.scales.view for kind in kinds[1:])], None, None
    )
    launches = run_cuda_grid_on_cpu(states, caches, slots, steps, src_rows=rows, **scales)
    assert [[s["path"] for s in launch["states"]] for launch in launches] == [
        ["one_dim", "quantize", "quantize"],
        ["quantize_groups"],
    ]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_copy_slots_moves_a_quantized_kind_as_two_raw_kinds(device):
    """Values and scales are two kinds of raw copy: a fork carries both, bit for bit."""
    generator = torch.Generator().manual_seed(12)
    pool = make_pool(
        (LAYERS, SLOTS, 2, 8, 16), torch.float8_e4m3fn, "contiguous", generator, device
    )
    scales = make_pool((LAYERS, SLOTS, 2, 8), torch.float32, "contiguous", generator, device)
    before = pool.clone(), scales.clone()
    src, dst = torch.tensor([1, 4], device=device), torch.tensor([6, 9], device=device)
    mamba_state_ext.copy_slots([pool.view, scales.view], src, dst)
    for storage, original in zip((pool, scales), before):
        want = original.parent.clone()
        want[:, dst] = original.parent[:, src]
        assert torch.equal(storage.parent.view(torch.uint8), want.view(torch.uint8))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_opcheck_and_compile_with_scales(device):
    """(int8 pools: opcheck's schema check compares its arguments with arithmetic that torch has
    not for float8.)"""
    generator = torch.Generator().manual_seed(13)
    kinds = [
        Kind((2, 8, 16), (2, 8), torch.int8, torch.float32, generator, device),
        Kind((4, 8), (4,), torch.int8, torch.int8, generator, device, quantized_cache=True),
    ]
    slots, steps, rows = make_indices(ROWS, SLOTS, ROWS, STEPS, generator, device=device)
    states = [kind.pool.view for kind in kinds]
    caches = [kind.cache for kind in kinds]
    state_scales = [kind.scales.view for kind in kinds]
    cache_scales = [None, kinds[1].cache_scales]
    scales = ops.raw_scales(states, caches, state_scales, cache_scales, [100.0, None])
    torch.library.opcheck(
        torch.ops.mamba_state.update.default,
        (states, caches, slots, steps),
        dict(src_rows=rows, **scales),
    )
    want = expected(kinds, slots, steps, rows, [100.0, None])

    @torch.compile(fullgraph=True)
    def commit_compiled(states, caches, slots, steps, rows, state_scales, cache_scales):
        mamba_state_ext.commit_verified_states(
            states,
            caches,
            slots,
            steps,
            src_rows=rows,
            state_scales=state_scales,
            intermediate_scales=cache_scales,
            quant_max=[100.0, None],
        )

    commit_compiled(states, caches, slots, steps, rows, state_scales, cache_scales)
    assert_storages_equal(kinds, want)


@CUDA
def test_cuda_graph_replays_a_quantized_commit_with_new_indices():
    if mamba_state_ext.backend().cuda != "compiled":
        pytest.skip("needs the compiled CUDA kernel")
    generator = torch.Generator().manual_seed(14)
    kinds = [
        Kind((2, 64, 16), (2, 2), torch.float8_e4m3fn, torch.float32, generator, "cuda"),
        Kind((6, 3), None, torch.bfloat16, torch.bfloat16, generator, "cuda"),
    ]
    slots, steps, rows = make_indices(ROWS, SLOTS, ROWS, STEPS, generator, device="cuda")
    states = [kind.pool.view for kind in kinds]
    caches = [kind.cache for kind in kinds]
    state_scales = [kinds[0].scales.view, None]
    mamba_state_ext.update(
        states, caches, slots, steps, src_rows=rows, check=False, state_scales=state_scales
    )
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        mamba_state_ext.update(
            states, caches, slots, steps, src_rows=rows, check=False, state_scales=state_scales
        )
    for _ in range(3):
        new = make_indices(ROWS, SLOTS, ROWS, STEPS, generator, device="cuda")
        for index, value in zip((slots, steps, rows), new):
            index.copy_(value)
        want = expected(kinds, slots, steps, rows)
        graph.replay()
        torch.cuda.synchronize()
        assert_storages_equal(kinds, want)


@COMPILED
@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64's CPU capabilities")
@pytest.mark.parametrize("capability", ["default", "avx2", "avx512"])
def test_the_cpu_kernel_at_each_cpu_capability(capability):
    """The CPU kernel's quantize loops are built for x86-64's baseline, AVX2 and AVX-512, the
    widest the CPU has chosen at run time unless ATEN_CPU_CAPABILITY caps it: in a process with
    the cap, the library reports the loops it chose (build_info's cpu) and this file's CPU cases
    of the operator pass."""
    widest = torch.backends.cpu.get_cpu_capability().lower()  # torch's choice, uncapped here
    order = ["default", "avx2", "avx512"]
    if order.index(widest) < order.index(capability):
        pytest.skip(f"this CPU runs {widest} at most")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    report = "import mamba_state_ext, torch; print(torch.ops.mamba_state.build_info())"
    info = subprocess.run(
        [sys.executable, "-c", report], env=env, capture_output=True, text=True, timeout=120
    )
    assert info.returncode == 0, info.stderr[-3000:]
    assert info.stdout.strip().endswith(f";cpu={capability}"), info.stdout
    cases = "op-cpu and not cpu_capability"
    command = [
        sys.executable,
        "-m",
        "pytest",
        __file__,
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        cases,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
