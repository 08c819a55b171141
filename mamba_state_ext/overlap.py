"""Whether views share memory, decided from data pointers, strides and sizes (no data is read).
Twin of csrc/memory_overlap.cpp, step for step; tests/test_overlap.py holds the two to one answer
and to a byte-by-byte oracle."""

from __future__ import annotations

import torch

from .constants import MAX_FOLLOWED_BLOCKS, OVERLAP_BUDGET


def byte_range(tensor: torch.Tensor) -> tuple[int, int]:
    """The bytes from the view's first to past its last, [begin, end); empty without elements."""
    begin = tensor.data_ptr()
    if tensor.numel() == 0:
        return begin, begin
    last = sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride()))
    return begin, begin + (last + 1) * tensor.element_size()


def ranges_meet(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[0] < a[1] and b[0] < b[1]


def may_overlap_itself(tensor: torch.Tensor) -> bool:
    """Whether two elements of the view may share a byte. Sufficient, not necessary: with dims
    ordered by stride, each stride must step past everything the smaller dims span."""
    if tensor.numel() == 0:
        return False
    span = 1
    for stride, size in sorted((tensor.stride(d), tensor.shape[d]) for d in range(tensor.dim())):
        if size > 1:
            if stride < span:
                return True
            span += stride * (size - 1)
    return False


class _ByteLayout:
    """A view's bytes as its first byte plus (byte stride, size) dims, largest stride first; dims
    of size 1 or stride 0 reach no other byte and are left out."""

    def __init__(self, tensor: torch.Tensor):
        self.base = tensor.data_ptr()
        size = tensor.element_size()
        self.dims = sorted(
            (
                (tensor.stride(d) * size, tensor.shape[d])
                for d in range(tensor.dim())
                if tensor.shape[d] > 1 and tensor.stride(d) != 0
            ),
            reverse=True,
        )
        self.spans = [size]  # spans[i]: bytes from base covered by dims[i:]
        for stride, count in reversed(self.dims):
            self.spans.insert(0, self.spans[0] + stride * (count - 1))


def _share_bytes(a, i, a_base, b, j, b_base, budget) -> bool:
    if a_base + a.spans[i] <= b_base or b_base + b.spans[j] <= a_base:
        return False
    if i == len(a.dims) and j == len(b.dims):
        return True  # two elements whose bytes meet
    budget[0] -= 1
    if budget[0] < 0:
        return True
    # Peel the dim with the larger stride; call its view x.
    peel_a = j == len(b.dims) or (i < len(a.dims) and a.dims[i] >= b.dims[j])
    x, y, xi, yi, x_base, y_base = (
        (a, b, i, j, a_base, b_base) if peel_a else (b, a, j, i, b_base, a_base)
    )
    stride, count = x.dims[xi]
    x_inner = x.spans[xi + 1]
    if x_inner > stride:
        return True  # x's blocks interleave with each other

    def recurse(x_next, x_at, y_next, y_at):
        if peel_a:
            return _share_bytes(a, x_next, x_at, b, y_next, y_at, budget)
        return _share_bytes(a, y_next, y_at, b, x_next, x_at, budget)

    if yi < len(y.dims) and y.dims[yi][0] == stride and y.spans[yi + 1] <= stride:
        # Block p of x meets block q of y only at q - p = k with k * stride within
        # (x_base - y_base - y_inner, x_base - y_base + x_inner).
        y_count = y.dims[yi][1]
        offset = x_base - y_base
        k = (offset - y.spans[yi + 1]) // stride + 1
        while k * stride < offset + x_inner:
            some_pair = max(0, -k) < min(count, y_count - k)
            if some_pair and recurse(xi + 1, x_base, yi + 1, y_base + k * stride):
                return True
            k += 1
        return False
    # y stays whole: follow the blocks of x that its byte range reaches, if there are few.
    first = max(0, (y_base - x_base - x_inner) // stride + 1)
    last = min(count - 1, (y_base + y.spans[yi] - 1 - x_base) // stride)
    if last - first >= MAX_FOLLOWED_BLOCKS:
        return True
    return any(recurse(xi + 1, x_base + p * stride, yi, y_base) for p in range(first, last + 1))


def share_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether some byte lies in both views. Exact where each dim steps past all that the dims
    below it span (views cut from one parent, the parts of an envelope, a window's outer dims);
    elsewhere, and past OVERLAP_BUDGET steps, conservative: true when the byte ranges meet."""
    if not ranges_meet(byte_range(a), byte_range(b)):
        return False
    layout_a, layout_b = _ByteLayout(a), _ByteLayout(b)
    return _share_bytes(layout_a, 0, layout_a.base, layout_b, 0, layout_b.base, [OVERLAP_BUDGET])
