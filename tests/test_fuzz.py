"""Property-based tests: random shapes, dtypes, indices, masks and layouts, and quantized kinds
(int8 and float8 pools with random group layouts, quantized on commit or copied with their
scales), every implementation against the per-entry reference (reference.loop_update), bit for
bit, over the whole storage of every pool and scale tensor.

Profiles (MAMBA_STATE_EXT_FUZZ): ``ci`` (default, a few hundred cases), ``long`` (10,000 per
test), ``sanitizer`` (a few dozen, for compute-sanitizer in scripts/gpu_check.sh). A failure
prints the case and a ``@reproduce_failure`` blob; ``pytest --hypothesis-seed=N`` replays a run.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from helpers import (
    COMPILED,
    CUDA,
    FLOAT_PAIRS,
    FLOATS,
    IMPLEMENTATIONS,
    RAW_DTYPES,
    assert_same_bits,
    fill_finite,
    fill_random,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamba_state_ext import checks, ops
from mamba_state_ext.calls import UpdateCall
from mamba_state_ext.quantization import QUANTIZED_DTYPES, dtype_max, groups_divide
from mamba_state_ext.reference import loop_update

common = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=150, **common)
settings.register_profile("long", max_examples=10_000, **common)
settings.register_profile("sanitizer", max_examples=25, **common)
PROFILE = os.environ.get("MAMBA_STATE_EXT_FUZZ", "ci")

DTYPE_PAIRS = FLOAT_PAIRS + [(dtype, dtype) for dtype in RAW_DTYPES + (torch.uint8, torch.int64)]


@st.composite
def strided_views(draw, shape, dtype, *, allow_window=False, finite=False):
    """A view of the given shape over a larger storage: dims in a random memory order, each padded
    and offset at random; or (allow_window) T overlapping windows over the last entry dim.
    finite: no NaN or infinity in it (a cache a pool is quantized from)."""
    fill = fill_finite if finite else fill_random
    if allow_window and len(shape) >= 4 and draw(st.booleans()):
        layers, rows, steps, *entry = shape
        buffer = fill(
            torch.empty(layers, rows, *entry[:-1], entry[-1] + steps - 1, dtype=dtype),
            _generator(draw),
        )
        stride = list(buffer.stride())
        return buffer, buffer.as_strided(
            shape, stride[:2] + [stride[-1]] + stride[2:], buffer.storage_offset()
        )
    order = draw(st.permutations(range(len(shape))))
    pads = [draw(st.integers(0, 2)) for _ in shape]
    offsets = [draw(st.integers(0, pad)) for pad in pads]
    parent = fill(torch.empty([shape[d] + pads[d] for d in order], dtype=dtype), _generator(draw))
    view = parent[tuple(slice(offsets[d], offsets[d] + shape[d]) for d in order)]
    return parent, view.permute([order.index(d) for d in range(len(shape))])


def _generator(draw):
    return torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))


@dataclasses.dataclass
class Case:
    parents: list  # the storages under the pools and the pools' scales, to compare every byte
    states: list
    intermediates: list
    dst_slots: torch.Tensor
    steps: torch.Tensor
    src_rows: torch.Tensor | None
    step_offset: int
    bad: list  # positions of the entries made bad on purpose
    track_slots: torch.Tensor | None = None
    track_steps: torch.Tensor | None = None
    # Quantized kinds, as the wrapper takes them (aligned with the kinds; None: a plain kind).
    state_scales: list | None = None
    intermediate_scales: list | None = None
    quant_max: list | None = None

    def arguments(self, states=None):
        """The four required arguments."""
        return (
            (self.states if states is None else states),
            self.intermediates,
            self.dst_slots,
            self.steps,
        )

    def track(self) -> dict:
        """The track copies, as keyword arguments (none when the case has none)."""
        if self.track_slots is None:
            return {}
        return dict(track_slots=self.track_slots, track_steps=self.track_steps)

    def scales(self) -> dict:
        """The scale arguments as the operator takes them (none when no kind has scales)."""
        if self.state_scales is None:
            return {}
        return ops.raw_scales(
            self.states,
            self.intermediates,
            self.state_scales,
            self.intermediate_scales,
            self.quant_max,
        )

    def options(self) -> dict:
        """The optional arguments, as keyword arguments."""
        options = dict(src_rows=self.src_rows, step_offset=self.step_offset, **self.track())
        return {**options, **self.scales()}

    def to(self, device):
        moved = lambda t: None if t is None else t.to(device)  # noqa: E731
        parents = [p.to(device) for p in self.parents]

        def rebased(view):  # the same view of the moved parent
            [parent] = [new for old, new in zip(self.parents, parents) if view._base is old]
            return parent.as_strided(view.shape, view.stride(), view.storage_offset())

        def read(view):  # the same view over a moved storage (windows stay windows)
            if view is None or view._base is None:
                return moved(view)
            return view._base.to(device).as_strided(
                view.shape, view.stride(), view.storage_offset()
            )

        def listed(views, each):
            return None if views is None else [None if v is None else each(v) for v in views]

        return dataclasses.replace(
            self,
            parents=parents,
            states=[rebased(state) for state in self.states],
            intermediates=[read(intermediate) for intermediate in self.intermediates],
            state_scales=listed(self.state_scales, rebased),
            intermediate_scales=listed(self.intermediate_scales, read),
            dst_slots=moved(self.dst_slots),
            steps=moved(self.steps),
            src_rows=moved(self.src_rows),
            track_slots=moved(self.track_slots),
            track_steps=moved(self.track_steps),
        )


@st.composite
def cases(draw, *, with_bad_entries=False):
    layers = draw(st.integers(1, 3))
    slots = draw(st.integers(1, 12))
    rows = draw(st.integers(1, 8))
    steps = draw(st.integers(1, 16))
    parents, states, intermediates = [], [], []
    state_scales, cache_scales, quant_max, scale_parents = [], [], [], []
    for _ in range(draw(st.integers(1, 3))):
        entry = draw(st.lists(st.integers(0, 5), min_size=0, max_size=4))
        quantized = draw(st.integers(0, 2)) == 0
        if quantized:  # an int8 or float8 pool with scales, from a float or a quantized cache
            dst_dtype = draw(st.sampled_from(QUANTIZED_DTYPES))
            copied = draw(st.booleans())
            src_dtype = dst_dtype if copied else draw(st.sampled_from(FLOATS))
        else:
            dst_dtype, src_dtype = draw(st.sampled_from(DTYPE_PAIRS))
        parent, state = draw(strided_views((layers, slots, *entry), dst_dtype))
        _, intermediate = draw(
            strided_views(
                (layers, rows, steps, *entry), src_dtype, allow_window=True, finite=quantized
            )
        )
        parents.append(parent)
        states.append(state)
        intermediates.append(intermediate)
        if not quantized:
            state_scales.append(None), cache_scales.append(None), quant_max.append(None)
            continue
        groups = []
        for size in entry[: draw(st.integers(0, len(entry)))]:  # each dividing its state dim
            groups.append(draw(st.sampled_from([g for g in range(6) if groups_divide(g, size)])))
        scale_parent, scales = draw(strided_views((layers, slots, *groups), torch.float32))
        scale_parents.append(scale_parent)
        state_scales.append(scales)
        cache_scales.append(
            draw(strided_views((layers, rows, steps, *groups), torch.float32, finite=True))[1]
            if copied
            else None
        )
        largest = dtype_max(dst_dtype)
        quant_max.append(draw(st.sampled_from([None, largest, min(largest, 100.0), 0.5])))
    with_rows = draw(st.booleans())
    num_entries = draw(st.integers(0, min(slots, 10) if with_rows else min(slots, rows, 10)))
    step_offset = draw(st.sampled_from([-1, 0, 1]))
    chosen = draw(st.permutations(range(slots)))[:num_entries]
    entry_steps, entry_rows, entry_slots = [], [], []
    for n in range(num_entries):
        skip = draw(st.integers(0, 5))
        if skip == 0:  # skipped by its step, with the garbage a padded batch carries
            entry_steps.append(draw(st.integers(-3, -1)) - step_offset)
            entry_slots.append(draw(st.integers(-100, 100)))
            entry_rows.append(draw(st.integers(-100, 100)))
        elif skip == 1:  # skipped by its slot (PAD_SLOT_ID), with any step and row
            entry_steps.append(draw(st.integers(-3, steps + 3)) - step_offset)
            entry_slots.append(draw(st.integers(-100, -1)))
            entry_rows.append(draw(st.integers(-100, 100)))
        else:
            entry_steps.append(draw(st.integers(0, steps - 1)) - step_offset)
            entry_slots.append(chosen[n])
            entry_rows.append(draw(st.integers(0, rows - 1)) if with_rows else n)
    bad = []
    if with_bad_entries and num_entries:
        for n in draw(st.lists(st.integers(0, num_entries - 1), max_size=3, unique=True)):
            bounds = ["slot", "row", "step"] if with_rows else ["slot", "step"]
            bound = draw(st.sampled_from(bounds))
            # Applied (a valid step and slot, a valid row), then one bound broken.
            entry_steps[n] = draw(st.integers(0, steps - 1)) - step_offset
            entry_slots[n] = chosen[n]
            entry_rows[n] = draw(st.integers(0, rows - 1)) if with_rows else n
            if bound == "slot":
                entry_slots[n] = draw(st.sampled_from([slots, slots + 7]))
            elif bound == "row":
                entry_rows[n] = draw(st.sampled_from([-2, rows]))
            else:
                entry_steps[n] = steps - step_offset + draw(st.integers(0, 3))
            bad.append(n)
    index_dtype = lambda: draw(st.sampled_from([torch.int32, torch.int64]))  # noqa: E731
    track_slots = track_steps = None
    if draw(st.booleans()):  # track copies into slots the commit does not write
        free = [slot for slot in range(slots) if slot not in entry_slots]
        track_slots = [
            free.pop() if free and draw(st.booleans()) else -1 for _ in range(num_entries)
        ]
        track_steps = [draw(st.integers(-1, steps - 1)) for _ in range(num_entries)]
        for n in range(num_entries):  # the row is shared: no track copy from a bad or garbage row
            if n in bad or not (0 <= entry_rows[n] < rows):
                track_steps[n] = -1
        # Entries whose commit is good and whose track copy breaks a bound: bad, none of it applied.
        good_commits = [
            n
            for n in range(num_entries)
            if n not in bad
            and entry_steps[n] + step_offset >= 0
            and 0 <= entry_slots[n] < slots
            and 0 <= entry_rows[n] < rows
        ]
        if with_bad_entries and good_commits:
            for n in draw(st.lists(st.sampled_from(good_commits), max_size=2, unique=True)):
                if draw(st.booleans()):
                    track_slots[n] = draw(st.sampled_from([slots, slots + 4]))
                    track_steps[n] = draw(st.integers(0, steps - 1))
                else:
                    track_slots[n] = draw(st.integers(0, slots - 1))
                    track_steps[n] = steps + draw(st.integers(0, 2))
                bad.append(n)
        track_slots = torch.tensor(track_slots, dtype=index_dtype())
        track_steps = torch.tensor(track_steps, dtype=index_dtype())
    scaled = any(scales is not None for scales in state_scales)
    return Case(
        parents + scale_parents,
        states,
        intermediates,
        torch.tensor(entry_slots, dtype=index_dtype()),
        torch.tensor(entry_steps, dtype=index_dtype()),
        torch.tensor(entry_rows, dtype=index_dtype()) if with_rows else None,
        step_offset,
        sorted(bad),
        track_slots,
        track_steps,
        state_scales if scaled else None,
        cache_scales if any(scales is not None for scales in cache_scales) else None,
        quant_max if scaled else None,
    )


def expected_result(case: Case):
    """The storages after applying every good entry, by the per-entry reference."""
    good = torch.ones(case.dst_slots.numel(), dtype=torch.bool, device=case.dst_slots.device)
    good[case.bad] = False
    parents = [p.clone() for p in case.parents]

    def rebased(view):  # the same view of the cloned parent
        if view is None:
            return None
        [parent] = [new for old, new in zip(case.parents, parents) if view._base is old]
        return parent.as_strided(view.shape, view.stride(), view.storage_offset())

    states = [rebased(state) for state in case.states]
    scales = {}
    if case.state_scales is not None:
        scales = dict(
            state_scales=[rebased(view) for view in case.state_scales],
            intermediate_scales=case.intermediate_scales,
            quant_max=case.quant_max,
        )
    rows = case.src_rows  # the default row is the entry's position: fix it before filtering
    if rows is None:
        rows = torch.arange(case.dst_slots.numel(), device=case.dst_slots.device)
    track = {name: tensor[good] for name, tensor in case.track().items()}
    loop_update(
        states,
        case.intermediates,
        case.dst_slots[good],
        case.steps[good],
        src_rows=rows[good],
        step_offset=case.step_offset,
        **track,
        **scales,
    )
    return parents


def expected_status(case: Case):
    num_slots = case.states[0].shape[1]
    num_rows, num_steps = case.intermediates[0].shape[1:3]
    index_sets = checks.update_index_sets(UpdateCall(*case.arguments(), **case.options()))
    status = checks.resolve_all(index_sets, num_slots, num_rows, num_steps)[:, 0]
    # A bad entry breaks the bounds of one of its copies, never of both: no bit is counted twice.
    return status.sum(0).tolist()


def run_without_sync(implementation: str, case: Case):
    """An implementation that cannot raise (CUDA kernels, the CUDA grid): good entries applied,
    bad ones applied nowhere, and entry_status telling which."""
    expected = expected_result(case)
    status = torch.full(
        (case.dst_slots.numel(),), -1, dtype=torch.int32, device=case.dst_slots.device
    )
    IMPLEMENTATIONS[implementation](*case.arguments(), entry_status=status, **case.options())
    for parent, reference in zip(case.parents, expected):
        assert_same_bits(parent, reference)
    assert status.tolist() == expected_status(case)
    assert [n for n, bits in enumerate(status.tolist()) if bits] == case.bad


@pytest.mark.parametrize("implementation", [pytest.param("op", marks=COMPILED), "fallback"])
@settings(settings.get_profile(PROFILE))
@given(case=cases(with_bad_entries=True))
def test_cpu(implementation, case):
    """On the CPU: the good cases match the reference; a bad entry raises before any write."""
    if case.bad:
        before = [p.clone() for p in case.parents]
        with pytest.raises(IndexError, match=f"entry {case.bad[0]}: "):
            IMPLEMENTATIONS[implementation](*case.arguments(), **case.options())
        for parent, snapshot in zip(case.parents, before):
            assert_same_bits(parent, snapshot)
        return
    expected = expected_result(case)
    IMPLEMENTATIONS[implementation](*case.arguments(), **case.options())
    for parent, reference in zip(case.parents, expected):
        assert_same_bits(parent, reference)


@settings(settings.get_profile(PROFILE))
@given(case=cases(with_bad_entries=True))
def test_cuda_grid_on_cpu(case):
    run_without_sync("grid", case)


@CUDA
@pytest.mark.parametrize("implementation", [pytest.param("op", marks=COMPILED), "fallback"])
@settings(settings.get_profile(PROFILE))
@given(case=cases(with_bad_entries=True))
def test_cuda(implementation, case):
    run_without_sync(implementation, case.to("cuda"))
