"""Quantized state pools: which dtypes they hold, and the formula a commit quantizes a group with,
in torch. The Python fallback and the reference baselines quantize with it; the C++ and CUDA
kernels (csrc/quantize.h) must match it bit for bit.

A quantized kind is a pool of int8, float8_e4m3fn or float8_e5m2 values with a float32 scale
tensor ``[L, C, *S]``: ``S`` has at most as many dims as the state shape ``E``, each dividing the
matching leading dim of ``E`` (a dim of size 0 may have 0 groups), and the group of scale element
``s`` is the block of ``E`` of size ``E[d] / S[d]`` along each of those dims and the whole of every
trailing dim ``S`` lacks.

A full-precision group ``x`` (converted to float32 first) is quantized as: ``amax = max(|x|)``;
``scale = amax / qmax`` (float32, IEEE division; ``qmax`` as float32); ``q = x / scale`` (IEEE
division), clamped to ``[-qmax, qmax]``, rounded to nearest even, converted to the pool's dtype;
a group whose scale is 0 (all zeros, or so small that ``amax / qmax`` underflows) stores scale 0
and zeros (all bits 0). So ``q.float() * scale`` dequantizes. A group holding a NaN or an infinity
gets a scale that is not finite; its values are then unspecified.
"""

from __future__ import annotations

import struct

import torch

QUANTIZED_DTYPES = (torch.int8, torch.float8_e4m3fn, torch.float8_e5m2)


def dtype_max(dtype: torch.dtype) -> float:
    """The largest finite value of a quantized dtype: the default qmax (127, 448, 57344)."""
    return float(torch.iinfo(dtype).max if dtype == torch.int8 else torch.finfo(dtype).max)


def as_float32(value: float) -> float:
    """``value`` rounded to float32, as the kernels take ``quant_max`` (finite values up to
    float32's largest)."""
    return struct.unpack("f", struct.pack("f", value))[0]


def groups_divide(groups: int, size: int) -> bool:
    """Whether a state dim of ``size`` splits into ``groups`` equal blocks: ``groups`` divides
    ``size``, and 0 groups split only a dim of size 0."""
    return (size % groups if groups else size) == 0


def group_extents(state_shape, groups) -> list[int]:
    """The extent of one group along each state dim: state_shape[d] // groups[d] over the dims
    the scales have (0 for 0 groups, which only a dim of size 0 may have), the whole dim after
    them."""
    return [
        (size // groups[d] if groups[d] else 0) if d < len(groups) else size
        for d, size in enumerate(state_shape)
    ]


def quantize(x: torch.Tensor, state_dims: int, groups, dtype: torch.dtype, qmax: float):
    """Quantizes ``x`` (``[*lead, *E]`` with ``len(E) == state_dims``, any float dtype) group by
    group; returns ``(q, scales)``: ``q`` of ``dtype`` and x's shape, ``scales`` float32
    ``[*lead, *S]``."""
    lead, state = x.shape[: x.dim() - state_dims], x.shape[x.dim() - state_dims :]
    extents = group_extents(state, groups)
    blocked = []
    for d, size in enumerate(state):
        blocked += [groups[d], extents[d]] if d < len(groups) else [size]
    x = x.float().reshape([*lead, *blocked])
    within = [len(lead) + 2 * d + 1 for d in range(len(groups))]
    within += list(range(len(lead) + 2 * len(groups), x.dim()))
    if x.numel() == 0:
        amax = x.new_zeros([1 if d in within else n for d, n in enumerate(x.shape)])
    elif within:
        amax = x.abs().amax(dim=within, keepdim=True)
    else:  # a state of no dims, one element (amax over no dim would be over all of them)
        amax = x.abs()
    qmax_float = torch.tensor(qmax, dtype=torch.float32, device=x.device)
    scales = amax / qmax_float  # a tensor divisor: IEEE division on every device
    zero = scales == 0
    q = (x / torch.where(zero, torch.ones_like(scales), scales)).clamp(-qmax_float, qmax_float)
    q = torch.where(zero, torch.zeros_like(q), q)
    q = torch.round(q).to(dtype) if dtype == torch.int8 else q.to(dtype)
    return q.reshape([*lead, *state]), scales.reshape([*lead, *groups])
