"""A v3-style Triton masked scatter, the GPU baseline of the benchmark (not part of the API).

As servers wrote it: one program per (entry, layer, 1024-element block), the skip (step < 0)
masked inside the kernel, one launch per state kind; contiguous entries and equal dtypes only.
"""

from __future__ import annotations

import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _masked_scatter(
    dst, src, dst_slots, steps, src_rows, entry_numel, step_offset,
    dst_layer_stride, dst_slot_stride, src_layer_stride, src_row_stride, src_step_stride,
    BLOCK: tl.constexpr,
):
    entry = tl.program_id(0)
    layer = tl.program_id(1).to(tl.int64)
    block = tl.program_id(2)
    step = tl.load(steps + entry).to(tl.int64) + step_offset
    slot = tl.load(dst_slots + entry).to(tl.int64)
    row = tl.load(src_rows + entry).to(tl.int64)
    offsets = block * BLOCK + tl.arange(0, BLOCK)
    mask = (offsets < entry_numel) & (step >= 0)
    source = src + layer * src_layer_stride + row * src_row_stride + step * src_step_stride
    values = tl.load(source + offsets, mask=mask)
    target = dst + layer * dst_layer_stride + slot * dst_slot_stride
    tl.store(target + offsets, values, mask=mask)


def masked_scatter_update(states, intermediates, dst_slots, steps, src_rows, *, step_offset=0):
    """Same arguments as reference.vectorized_update (src_rows required); one launch per kind."""
    for state, intermediate in zip(states, intermediates):
        entry_numel = state[0, 0].numel()
        assert state.dtype == intermediate.dtype, "the v3 kernel does not convert dtypes"
        assert state[0, 0].is_contiguous() and intermediate[0, 0, 0].is_contiguous()
        grid = (dst_slots.numel(), state.shape[0], triton.cdiv(entry_numel, BLOCK))
        _masked_scatter[grid](
            state, intermediate, dst_slots, steps, src_rows, entry_numel, step_offset,
            state.stride(0), state.stride(1),
            intermediate.stride(0), intermediate.stride(1), intermediate.stride(2),
            BLOCK=BLOCK,
        )
