"""The project's performance targets, which every benchmark run checks and prints against its own
medians (report.target_lines). Each is a ratio of two medians measured in the same run on the
same device, with the bound it must meet; the docs quote them from here.

Shares of ``copy_``'s speed are a ``copy_``'s time over the method's, for the same bytes read and
written; speedups are a baseline's time over ours.
"""

from __future__ import annotations

# GPU, Qwen3-Next TP4 shapes: share of copy_'s speed, by N, with contiguous caches and with
# SGLang's layouts (de-duplicated conv window, batch rows, track copies).
GPU_SHARE_OF_COPY = {8: 0.95, 64: 0.97}
GPU_SHARE_OF_COPY_SGLANG_LAYOUTS = {64: 0.95}
# N = 1: time at most this times (copy_ + an empty kernel launch).
GPU_N1_TIME_VS_COPY_AND_LAUNCH = 1.2
# Speedup over SGLang's own kernels: at N <= 8, and at every larger N.
GPU_SPEEDUP_VS_SGLANG_SMALL_N = 1.15
GPU_SPEEDUP_VS_SGLANG = 1.0
SMALL_N = 8
# Speedup over advanced indexing (the seed's code), by N.
GPU_SPEEDUP_VS_VECTORIZED = {64: 2.0, 8: 5.0}
# A CUDA-graph batch padded past its live entries: time at most this times the live ones alone.
GPU_PADDED_VS_LIVE = 1.05
# The host's time to issue one commit, at most this times a copy_'s (N <= SMALL_N).
GPU_HOST_ISSUE_VS_COPY = 1.0

# Quantize-on-commit (the quantized Qwen3-Next presets): on a GPU, share of copy_'s speed by N
# and speedup over the obvious torch code (reference.vectorized_update, which quantizes with
# quantization.quantize) by N; on the CPU, share of copy_'s speed at every N.
GPU_QUANTIZED_SHARE_OF_COPY = {64: 0.90}
GPU_QUANTIZED_SPEEDUP_VS_VECTORIZED = {8: 5.0}
CPU_QUANTIZED_SHARE_OF_COPY = 0.80

# CPU, every N of the plain Qwen3-Next presets, the same threads: share of copy_'s speed.
CPU_SHARE_OF_COPY = 0.95
CPU_SHARE_OF_COPY_SGLANG_LAYOUTS = 0.90
# The host's fixed cost of one raw call, at most this times a one-element copy_.
CPU_RAW_CALL_VS_COPY_1 = 4.0
