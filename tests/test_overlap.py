"""One memory-sharing decision. A destination may share no byte with itself or with any other
argument; the compiled op (csrc/memory_overlap.cpp) and the Python fallback (overlap.py) decide
it each on their own. Here random pairs of views of one small buffer go to both, and to an oracle
that lists every byte each view touches:

- both refuse every real overlap (never accept one the oracle sees);
- both give the same answer, whatever the layout;
- both answer exactly (no false refusal) on the layouts the contract promises exact: views sliced
  from one parent, the parts of an envelope (every state kind of a slot in one entry of one byte
  buffer), and overlapping conv windows beside views that their rows keep apart.

A written view ``a`` and a read view ``b`` go through ``update`` (states[0] = a, intermediates[1]
= b, with no entries, so that only the checks run); two written views through ``copy_slots``.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mamba_state_ext
from mamba_state_ext import fallback
from mamba_state_ext.constants import OVERLAP_BUDGET
from mamba_state_ext.overlap import byte_range

common = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("overlap-ci", max_examples=400, **common)
settings.register_profile("overlap-long", max_examples=10_000, **common)
PROFILE = "overlap-long" if os.environ.get("MAMBA_STATE_EXT_FUZZ") == "long" else "overlap-ci"

BUFFER_BYTES = 384
DTYPES = (torch.uint8, torch.bfloat16, torch.float16, torch.float32, torch.float64)
ACCEPTED, SELF, SHARED, SELF_SECOND = "accepted", "self", "shared", "self (second)"


# The oracle: every byte of the buffer each element touches.


def element_bytes(view: torch.Tensor) -> torch.Tensor:
    """[numel, element size]: the address of every byte of every element."""
    size = view.element_size()
    if view.numel() == 0:
        return torch.zeros(0, size, dtype=torch.long)
    extent = 1 + sum((length - 1) * stride for length, stride in zip(view.shape, view.stride()))
    offsets = torch.arange(extent).as_strided(view.shape, view.stride()).reshape(-1)
    return view.data_ptr() + offsets[:, None] * size + torch.arange(size)


def overlaps_itself(view: torch.Tensor) -> bool:
    addresses = element_bytes(view).reshape(-1)
    return addresses.unique().numel() < addresses.numel()


def share_a_byte(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.isin(element_bytes(a).reshape(-1), element_bytes(b).reshape(-1)).any())


# The two implementations, asked through the operators' checks.


def outcome(call) -> str:
    try:
        call()
    except ValueError as error:
        message = str(error)
        for marker, answer in (
            ("states[0] has elements that share memory", SELF),
            ("states[1] has elements that share memory", SELF_SECOND),
            ("shares memory with", SHARED),
        ):
            if marker in message:
                return answer
        raise
    return ACCEPTED


def written_and_read(update, a: torch.Tensor, b: torch.Tensor) -> str:
    """a written (a pool), b read (a cache): update's decision, with no entries."""
    states = [a[None, None], torch.zeros((1, 1, *b.shape), dtype=b.dtype)]
    caches = [torch.zeros((1, 1, 1, *a.shape), dtype=a.dtype), b[None, None, None]]
    none = torch.zeros(0, dtype=torch.long)
    return outcome(lambda: update(states, caches, none, none))


def both_written(copy_slots, a: torch.Tensor, b: torch.Tensor) -> str:
    """a and b both written (two pools): copy_slots' decision, with no entries."""
    none = torch.zeros(0, dtype=torch.long)
    return outcome(lambda: copy_slots([a[None, None], b[None, None]], none, none))


def expected_read(a, b) -> str:
    if overlaps_itself(a):
        return SELF
    return SHARED if share_a_byte(a, b) else ACCEPTED


def expected_written(a, b) -> str:
    if overlaps_itself(a):
        return SELF
    if share_a_byte(a, b):
        return SHARED
    return SELF_SECOND if overlaps_itself(b) else ACCEPTED


# The fallback called directly, and the compiled operator where it is loaded (under
# MAMBA_STATE_EXT_BACKEND=python the operator is the fallback: the oracle alone holds it).
IMPLEMENTATIONS = {"fallback": (fallback.update, fallback.copy_slots)}
if mamba_state_ext.backend().name == "compiled":
    IMPLEMENTATIONS["op"] = (
        lambda *args: torch.ops.mamba_state.update(*args),
        lambda *args: torch.ops.mamba_state.copy_slots(*args),
    )


def decide(a, b, *, exact: bool) -> None:
    """Both implementations against each other and the oracle, for a written beside b read and
    for both written."""
    answers = {
        name: (written_and_read(update, a, b), both_written(copy_slots, a, b))
        for name, (update, copy_slots) in IMPLEMENTATIONS.items()
    }
    assert len(set(answers.values())) == 1, f"the implementations disagree: {answers}"
    read, written = answers["fallback"]
    oracle = (expected_read(a, b), expected_written(a, b))
    if read == ACCEPTED:
        assert oracle[0] == ACCEPTED, f"a real overlap was accepted ({oracle[0]})"
    if written == ACCEPTED:
        assert oracle[1] == ACCEPTED, "a real overlap of two destinations was accepted"
    if exact:
        assert (read, written) == oracle, f"not exact: decided {(read, written)}, real {oracle}"


# Views of one small buffer.


def fits(shape, strides, offset, elements) -> bool:
    if any(size == 0 for size in shape):
        return offset <= elements
    return offset + sum((size - 1) * stride for size, stride in zip(shape, strides)) < elements


@st.composite
def strided_views(draw, buffer: torch.Tensor, *, writable: bool):
    """Any view: random dtype, sizes, strides (0 too, for a read view) and offset."""
    dtype = draw(st.sampled_from(DTYPES))
    elements = buffer.numel() // dtype.itemsize
    rank = draw(st.integers(0, 4))
    shape = [draw(st.integers(0 if rank else 1, 4)) for _ in range(rank)]
    strides = [draw(st.integers(0 if not writable else 1, 24)) for _ in range(rank)]
    while not fits(shape, strides, 0, elements):
        strides = [stride // 2 for stride in strides]
    limit = elements - 1 - sum((s - 1) * t for s, t in zip(shape, strides) if s > 0)
    offset = draw(st.integers(0, max(limit, 0)))
    return buffer.view(dtype).as_strided(shape, strides, offset)


@st.composite
def slices_of_one_parent(draw, buffer: torch.Tensor):
    """Two views cut from one parent by unit-step slices, each in its own dim order."""
    dtype = draw(st.sampled_from(DTYPES))
    rank = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 5)) for _ in range(rank)]
    elements = buffer.numel() // dtype.itemsize
    while torch.Size(shape).numel() > elements:
        shape[shape.index(max(shape))] -= 1
    offset = draw(st.integers(0, elements - torch.Size(shape).numel()))
    parent = buffer.view(dtype)[offset : offset + torch.Size(shape).numel()].view(shape)
    parent = parent.permute(draw(st.permutations(range(rank))))

    def interval(low, high):  # non-empty where it can be
        if high == low:
            return low, high
        start = draw(st.integers(low, high - 1))
        return start, draw(st.integers(start + 1, high))

    cut_a = [interval(0, size) for size in parent.shape]
    cut_b = [interval(0, size) for size in parent.shape]
    # Most often b is cut beside a along one dim (interleaved in memory, sharing no byte).
    if draw(st.integers(0, 3)):
        d = draw(st.integers(0, rank - 1))
        start, stop = cut_a[d]
        cut_b[d] = interval(0, start) if draw(st.booleans()) else interval(stop, parent.shape[d])

    def view(cut):
        index = tuple(slice(start, stop) for start, stop in cut)
        return parent[index].permute(draw(st.permutations(range(rank))))

    return view(cut_a), view(cut_b)


@st.composite
def envelope_parts(draw, buffer: torch.Tensor):
    """SGLang's envelope: every slot's entry of one byte buffer holds each state kind at its own
    byte range; a kind's pool is [L, C, *E] with its own dtype. Two parts, whose ranges may
    overlap."""
    slots = draw(st.integers(1, 4))
    entry_bytes = 8 * draw(st.integers(2, BUFFER_BYTES // 8 // slots))
    entries = buffer[: slots * entry_bytes].view(slots, entry_bytes)

    def part():
        dtype = draw(st.sampled_from(DTYPES))
        size = dtype.itemsize
        layers = draw(st.integers(1, min(3, entry_bytes // size)))
        inner = draw(st.integers(1, entry_bytes // size // layers))
        start = size * draw(st.integers(0, (entry_bytes - layers * inner * size) // size))
        view = entries[:, start : start + layers * inner * size].view(dtype)
        view = view.view(slots, layers, inner).transpose(0, 1)  # [L, C, inner]
        if inner % 2 == 0 and draw(st.booleans()):
            view = view.unflatten(2, (2, inner // 2))
        return view

    return part(), part()


@st.composite
def windows_beside_pools(draw, buffer: torch.Tensor):
    """A de-duplicated conv cache (T overlapping windows of width W along each row) and a view
    of other columns of the same rows, which may reach into the windows."""
    dtype = draw(st.sampled_from(DTYPES[:4]))
    columns = draw(st.integers(4, 12))
    rows = draw(st.integers(1, buffer.numel() // dtype.itemsize // columns))
    table = buffer.view(dtype)[: rows * columns].view(rows, columns)
    steps = draw(st.integers(1, 3))
    width = draw(st.integers(1, columns - steps))
    first = draw(st.integers(0, columns - steps - width + 1))
    windows = table[:, first:].as_strided((rows, steps, width), (columns, 1, 1))
    start = draw(st.integers(0, columns - 1))
    pool = table[:, start : draw(st.integers(start + 1, columns))]
    return pool, windows


def fresh_buffer():
    return torch.zeros(BUFFER_BYTES, dtype=torch.uint8)


@settings(settings.get_profile(PROFILE))
@given(data=st.data())
def test_any_two_views(data):
    buffer = fresh_buffer()
    a = data.draw(strided_views(buffer, writable=True), label="a")
    b = data.draw(strided_views(buffer, writable=data.draw(st.booleans())), label="b")
    decide(a, b, exact=False)


@settings(settings.get_profile(PROFILE))
@given(data=st.data())
def test_slices_of_one_parent(data):
    a, b = data.draw(slices_of_one_parent(fresh_buffer()))
    decide(a, b, exact=True)


@settings(settings.get_profile(PROFILE))
@given(data=st.data())
def test_envelope_parts(data):
    a, b = data.draw(envelope_parts(fresh_buffer()))
    decide(a, b, exact=True)


@settings(settings.get_profile(PROFILE))
@given(data=st.data())
def test_windows_beside_pools(data):
    pool, windows = data.draw(windows_beside_pools(fresh_buffer()))
    decide(pool, windows, exact=True)


def test_the_oracle():
    """The oracle itself, on cases whose answer is known."""
    buffer = fresh_buffer()
    rows = buffer.view(torch.float32)[:24].view(4, 6)
    assert not share_a_byte(rows[:, :3], rows[:, 3:]) and share_a_byte(rows[:, :4], rows[:, 3:])
    assert overlaps_itself(rows[:, :1].expand(4, 3)) and not overlaps_itself(rows.t())
    halves = buffer[:8].view(torch.bfloat16)  # four 2-byte elements
    assert share_a_byte(halves[1:2], buffer[3:4]) and not share_a_byte(halves[1:2], buffer[4:5])


# Pinned decisions: one layout for each branch of the decision, with the answer both
# implementations must give (read: a written beside b read; written: both written), so that a
# change of any branch or constant of the decision fails every run. "exact": the oracle's answer;
# else the decision is conservative there, and the oracle sees no shared byte. (The extent test
# each step starts with is what the blocks followed already meet: a change there changes no
# answer, only what the decision would do if its choice of blocks were wrong.)
def lattice(buffer, counts):
    """Bytes at multiples of 4, outermost dim first, each stride 4x the one inside it."""
    return buffer.as_strided(counts, [4 ** (len(counts) - d) for d in range(len(counts))], 0)


def odd_bytes(buffer, view, fewer=0):
    """Every odd byte across view's extent (no byte of a lattice), less the last `fewer`."""
    low, high = (address - buffer.data_ptr() for address in byte_range(view))
    return buffer.as_strided(((high - low + 1) // 2 - fewer,), (2,), 1)


def pinned_cases():
    buffer = torch.zeros(1 << 14, dtype=torch.uint8)
    f32 = buffer.view(torch.float32)
    table = f32[:24].view(4, 6)
    tall = f32[:60].view(10, 6)
    accepted_1024 = lattice(buffer, (4, 3, 4, 4, 4))  # exactly OVERLAP_BUDGET steps
    refused_1025 = lattice(buffer, (4, 4, 3, 4, 4))  # one step more
    return {
        # name: (a, b, read, written, exact)
        "apart": (buffer[0:16], buffer[16:32], ACCEPTED, ACCEPTED, True),
        "empty": (buffer[0:0], buffer[0:8], ACCEPTED, ACCEPTED, True),
        "the same element": (f32[0:1], f32[0:1], SHARED, SHARED, True),
        "expanded": (table[:, :1].expand(4, 3), buffer[1000:1001], SELF, SELF, True),
        "columns beside": (table[:, :3], table[:, 3:], ACCEPTED, ACCEPTED, True),
        "columns meet": (table[:, :4], table[:, 3:], SHARED, SHARED, True),
        "interleaved pairs": (
            f32.as_strided((2, 2), (6, 2), 0),
            f32.as_strided((2, 2), (6, 2), 1),
            ACCEPTED,
            ACCEPTED,
            True,
        ),
        "a block pair that does not exist": (
            buffer.as_strided((2, 3), (24, 8), 0),
            buffer.as_strided((2, 2), (24, 10), 38),
            ACCEPTED,
            ACCEPTED,
            True,
        ),
        "blocks that interleave": (
            f32[1:2],
            f32.as_strided((2, 3), (3, 2), 0),
            SHARED,
            SHARED,
            False,
        ),
        "four blocks followed": (
            accepted_1024,
            odd_bytes(buffer, accepted_1024),
            ACCEPTED,
            ACCEPTED,
            True,
        ),
        "four blocks from the second": (
            tall[:, :2],
            f32.as_strided((9,), (3,), 2),
            ACCEPTED,
            ACCEPTED,
            True,
        ),
        "five blocks": (tall[:, :2], f32.as_strided((11,), (3,), 2), SHARED, SHARED, False),
        "past the budget": (
            refused_1025,
            odd_bytes(buffer, refused_1025, fewer=5),
            SHARED,
            SHARED,
            False,
        ),
    }


def test_the_pinned_layouts_are_what_they_claim():
    """Each pinned layout: the steps its name says (the Python twin's own count), and the
    oracle's answer."""
    from mamba_state_ext import overlap

    def steps(a, b):
        layout_a, layout_b = overlap._ByteLayout(a), overlap._ByteLayout(b)
        budget = [1 << 30]
        overlap._share_bytes(layout_a, 0, layout_a.base, layout_b, 0, layout_b.base, budget)
        return (1 << 30) - budget[0]

    cases = pinned_cases()
    assert steps(*cases["four blocks followed"][:2]) == OVERLAP_BUDGET
    assert steps(*cases["past the budget"][:2]) == OVERLAP_BUDGET + 1
    for name, (a, b, read, written, exact) in cases.items():
        oracle = (expected_read(a, b), expected_written(a, b))
        if exact:
            assert (read, written) == oracle, name
        else:
            assert oracle == (ACCEPTED, ACCEPTED), f"{name}: conservative, so no real overlap"


@pytest.mark.parametrize("name", list(pinned_cases()))
def test_pinned_decision(name):
    a, b, read, written, _ = pinned_cases()[name]
    for implementation, (update, copy_slots) in IMPLEMENTATIONS.items():
        assert written_and_read(update, a, b) == read, implementation
        assert both_written(copy_slots, a, b) == written, implementation
