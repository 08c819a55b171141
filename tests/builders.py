"""Builders for pools, caches and indices in the layouts servers use, and a bitwise comparison:
for the tests and scripts/sanitizer_cases.py. Random data comes from the benchmark's
fill_random, with the special float values mixed in."""

from __future__ import annotations

import dataclasses
import functools

import torch

from mamba_state_ext.bench import workload

FLOATS = (torch.float32, torch.float16, torch.bfloat16)
FLOAT_PAIRS = [(dst, src) for dst in FLOATS for src in FLOATS]
# One dtype per element size the raw-byte path handles (1, 2, 4, 8, 16 bytes).
RAW_DTYPES = (torch.bool, torch.int8, torch.int16, torch.int32, torch.float64, torch.complex128)


# Random elements with the special float values among them; SGLang's de-duplicated conv cache.
fill_random = functools.partial(workload.fill_random, specials=True)
conv_window_view = workload.conv_window_view


def fill_finite(tensor: torch.Tensor, generator) -> torch.Tensor:
    """fill_random without NaN or infinity (the finite special values kept), for the caches a
    quantized pool is committed from: a group with a NaN or an infinity has no defined result."""
    fill_random(tensor, generator)
    if tensor.is_floating_point() and tensor.element_size() > 1:
        torch.nan_to_num_(tensor, nan=0.0, posinf=1.0, neginf=-1.0)
    return tensor


@dataclasses.dataclass
class Pool:
    """A destination view and the whole storage it lives in (to see every byte that changed)."""

    parent: torch.Tensor
    view: torch.Tensor

    def clone(self) -> Pool:
        parent = self.parent.clone()
        view = parent.as_strided(self.view.shape, self.view.stride(), self.view.storage_offset())
        return Pool(parent, view)


def make_pool(shape, dtype, layout: str, generator, device="cpu", *, finite=False) -> Pool:
    """A [L, C, *E] pool: "contiguous", "sliced" (a slice of a larger storage, offset by one
    element, so never 16-byte aligned) or "permuted" (the last two state dims swapped).
    finite: no NaN or infinity in it."""
    shape = list(shape)
    fill = fill_finite if finite else fill_random
    if layout == "contiguous":
        parent = fill(torch.empty(shape, dtype=dtype), generator)
        view = parent
    elif layout == "sliced":
        parent = fill(torch.empty([s + 2 for s in shape], dtype=dtype), generator)
        view = parent[tuple(slice(1, 1 + s) for s in shape)]
    elif layout == "permuted":
        assert len(shape) >= 4, "needs two state dims"
        swapped = shape[:-2] + [shape[-1], shape[-2]]
        parent = fill(torch.empty(swapped, dtype=dtype), generator)
        view = parent.transpose(-1, -2)
    else:
        raise ValueError(layout)
    parent = parent.to(device)
    view = parent.as_strided(view.shape, view.stride(), view.storage_offset())
    return Pool(parent, view)


def make_intermediate(
    shape, dtype, layout: str, generator, device="cpu", *, finite=False
) -> torch.Tensor:
    """A [L, R, T, *E] cache in the layouts of make_pool, or "window": the de-duplicated conv
    cache, T overlapping windows (read-only) over one [L, R, D, T + W - 1] buffer, for
    E = [D, W]."""
    if layout != "window":
        return make_pool(shape, dtype, layout, generator, device, finite=finite).view
    layers, rows, steps, dim, width = shape
    fill = fill_finite if finite else fill_random
    buffer = fill(torch.empty(layers, rows, dim, steps + width - 1, dtype=dtype), generator)
    return conv_window_view(buffer.to(device), steps)


def make_indices(
    num_entries,
    num_slots,
    num_rows,
    num_steps,
    generator,
    *,
    skip_fraction=0.25,
    step_offset=0,
    index_dtypes=(torch.int64, torch.int64, torch.int64),
    with_src_rows=True,
    device="cpu",
):
    """dst_slots (distinct), steps (+step_offset in [-1, T), about skip_fraction skipped) and
    src_rows (a permutation-ish draw, or None)."""
    assert num_entries <= num_slots
    slots = torch.randperm(num_slots, generator=generator)[:num_entries]
    steps = torch.randint(0, num_steps, (num_entries,), generator=generator)
    skipped = torch.rand(num_entries, generator=generator) < skip_fraction
    steps = torch.where(skipped, torch.full_like(steps, -1), steps) - step_offset
    # Skipped entries carry garbage slots and rows, as CUDA-graph padding does.
    slots = torch.where(skipped, torch.full_like(slots, -7), slots)
    rows = torch.randint(0, num_rows, (num_entries,), generator=generator)
    rows = torch.where(skipped, torch.full_like(rows, num_rows + 3), rows)
    slot_dtype, step_dtype, row_dtype = index_dtypes
    return (
        slots.to(device=device, dtype=slot_dtype),
        steps.to(device=device, dtype=step_dtype),
        rows.to(device=device, dtype=row_dtype) if with_src_rows else None,
    )


def assert_same_bits(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Bit for bit, except that a NaN of a float wider than a byte may be any NaN (PyTorch's own
    NaN payloads differ between its scalar and vectorized paths)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    actual, expected = actual.cpu(), expected.cpu()
    if actual.element_size() == 1:  # int8, uint8, bool, float8: every bit
        actual, expected = (
            actual.contiguous().view(torch.uint8),
            expected.contiguous().view(torch.uint8),
        )
    if actual.is_floating_point():
        nan = torch.isnan(expected)
        assert torch.equal(torch.isnan(actual), nan), "NaNs differ"
        actual = torch.where(nan, torch.zeros_like(actual), actual)
        expected = torch.where(nan, torch.zeros_like(expected), expected)
    bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    if actual.dtype.is_complex:
        actual, expected = torch.view_as_real(actual), torch.view_as_real(expected)
    dtype = bits[actual.element_size()]
    mismatched = actual.contiguous().view(dtype) != expected.contiguous().view(dtype)
    assert not mismatched.any(), (
        f"{int(mismatched.sum())} of {mismatched.numel()} elements differ, first at "
        f"{mismatched.nonzero()[0].tolist()}"
    )
