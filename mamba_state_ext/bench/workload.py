"""One preset at one batch size: pools, caches, index sets, the roofline copy's buffers, and the
check of a result against a direct gather."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from mamba_state_ext.quantization import dtype_max, quantize

from .presets import MAX_INDEX_SETS, MIB, Preset, StateKind


class Skip(Exception):
    """A size or method that cannot run here, with the reason shown in the table."""


def cache_bytes(device: torch.device) -> int:
    """The last-level cache: the GPU's L2, or the CPU's largest cache level."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).L2_cache_size
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip()
        sizes.append(int(text[:-1]) * 1024 if text.endswith("K") else int(text))
    return max(sizes, default=32 * MIB)


def free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 62


def conv_window_view(buffer: torch.Tensor, steps: int) -> torch.Tensor:
    """SGLang's de-duplicated conv cache: of a [L, R, D, T + W - 1] buffer, the [L, R, T, D, W]
    view whose step t is columns t .. t + W - 1 (T overlapping windows, so read-only)."""
    layers, rows, dim, columns = buffer.shape
    stride = buffer.stride()
    return buffer.as_strided(
        (layers, rows, steps, dim, columns - steps + 1),
        (stride[0], stride[1], stride[3], stride[2], stride[3]),
    )


# Float values that conversions get wrong first: NaN, infinities, signed zeros, denormals,
# values halfway between two bfloat16 or float16 neighbours, overflow to inf.
SPECIAL_VALUES = (
    float("nan"),
    float("inf"),
    -float("inf"),
    0.0,
    -0.0,
    1e-40,
    -3e-39,
    6e-8,
    1e-45,
    1.00390625,
    1.01171875,
    1.00048828125,
    65519.0,
    70000.0,
    3.3895e38,
)
FILL_BLOCK = MIB // 4  # elements drawn at random; a larger tensor repeats them


def fill_random(
    tensor: torch.Tensor, generator: torch.Generator, *, specials: bool = False
) -> torch.Tensor:
    """Fills a contiguous tensor with random elements, at memory speed for gigabytes: a block of
    up to FILL_BLOCK random elements, repeated. Floats are normal values times 3, a quarter of
    them SPECIAL_VALUES with ``specials``; bool is random, other dtypes random bits."""
    assert tensor.is_contiguous(), "fill the contiguous parent, not a view"
    flat = tensor.view(-1)
    count = min(flat.numel(), FILL_BLOCK)
    if tensor.is_floating_point():
        block = torch.randn(count, generator=generator, dtype=torch.float64) * 3
        if specials:
            table = torch.tensor(SPECIAL_VALUES, dtype=torch.float64)
            chosen = table[torch.randint(0, len(table), (count,), generator=generator)]
            block = torch.where(torch.rand(count, generator=generator) < 0.25, chosen, block)
        block = block.to(torch.float32).to(tensor.dtype)
    elif tensor.dtype == torch.bool:
        block = torch.randint(0, 2, (count,), generator=generator).bool()
    else:
        raw = torch.randint(0, 256, (count * tensor.element_size(),), generator=generator)
        block = raw.to(torch.uint8).view(tensor.dtype)
    block = block.to(tensor.device)
    whole = flat.numel() // max(count, 1) * count
    if whole:
        flat[:whole].view(-1, count).copy_(block.expand(whole // count, -1))
    flat[whole:].copy_(block[: flat.numel() - whole])
    return tensor


@dataclasses.dataclass
class CallIndices:
    """One call's indices: the commit, the track copies (or None) and the caches it reads."""

    slots: torch.Tensor
    steps: torch.Tensor
    rows: torch.Tensor | None  # None: the request's position in the batch
    track_slots: torch.Tensor | None
    track_steps: torch.Tensor | None
    caches: list[torch.Tensor]

    def commit_sets(self):
        """(slots, steps) of the commit and of the track copies."""
        sets = [(self.slots, self.steps)]
        if self.track_slots is not None:
            sets.append((self.track_slots, self.track_steps))
        return sets


def _slot_bytes(kind: StateKind) -> int:
    """One slot of one layer of a pool: the state, and a quantized kind's float32 scales."""
    scales = 0 if kind.groups is None else math.prod(kind.groups) * 4
    return math.prod(kind.entry) * kind.state_dtype.itemsize + scales


def window_cache(
    layers: int, rows: int, steps: int, kind: StateKind, conv_kernel: int, device, generator
) -> torch.Tensor:
    """SGLang's de-duplicated conv-window cache: [L, R, T, conv_dim, K - 1], step t's window
    being columns t .. t + K - 2 of one [conv_dim, T + K - 2] buffer per row."""
    conv_dim, width = kind.entry
    assert width == conv_kernel - 1
    buffer = torch.empty(
        layers, rows, conv_dim, steps + width - 1, dtype=kind.intermediate_dtype, device=device
    )
    fill_random(buffer, generator)
    return conv_window_view(buffer, steps)


class Workload:
    """Pools, caches and index sets for one preset and batch size N, of which `live` entries
    apply (the rest are the padding of a CUDA-graph batch: slot and step -1). Index set i uses its
    own slots and rows (or, batch-indexed, its own caches), so consecutive calls touch different
    memory."""

    def __init__(
        self,
        preset: Preset,
        num_entries: int,
        device: torch.device,
        *,
        track: bool = False,
        live: int | None = None,
        seed: int = 0,
    ):
        self.preset = preset
        self.num_entries = num_entries
        self.live = num_entries if live is None else min(live, num_entries)
        self.device = device
        track = track or preset.sglang_layout
        # With track copies, half the live requests (rounded up) also copy a step into a slot.
        self.num_tracked = (self.live + 1) // 2 if track else 0
        self.bytes = (self.live + self.num_tracked) * preset.bytes_per_entry()
        self.sets = max(
            1, min(MAX_INDEX_SETS, math.ceil(4 * cache_bytes(device) / max(self.bytes, 1)))
        )
        capacity = num_entries * self.sets * (2 if track else 1)
        rows_per_set = num_entries + 1 if preset.sglang_layout else num_entries
        pool_bytes = capacity * preset.layers * sum(_slot_bytes(k) for k in preset.kinds)
        cache_bytes_needed = (
            rows_per_set
            * self.sets
            * preset.steps
            * preset.layers
            * sum(math.prod(k.entry) * k.intermediate_dtype.itemsize for k in preset.kinds)
        )
        # Pools, caches, the copy roofline's buffers and advanced indexing's temporary gather.
        needed = pool_bytes + cache_bytes_needed + self.sets * self.bytes + self.bytes
        if needed > 0.9 * free_bytes(device):
            raise Skip(f"needs {needed / 2**30:.1f} GiB, {free_bytes(device) / 2**30:.1f} free")
        generator = torch.Generator().manual_seed(seed)
        self.states = [
            torch.zeros(preset.layers, capacity, *kind.entry, dtype=kind.state_dtype, device=device)
            for kind in preset.kinds
        ]
        # A quantized kind's float32 scales [L, C, *S]; None for a plain kind.
        self.state_scales = [
            None
            if kind.groups is None
            else torch.zeros(
                preset.layers, capacity, *kind.groups, dtype=torch.float32, device=device
            )
            for kind in preset.kinds
        ]
        shared_caches = (
            None if preset.sglang_layout else self._caches(num_entries * self.sets, generator)
        )
        slot_order = torch.randperm(capacity, generator=generator).view(self.sets, -1, num_entries)
        padding = torch.arange(num_entries) >= self.live
        self.index_sets = []
        for i in range(self.sets):
            steps = torch.randint(0, preset.steps, (num_entries,), generator=generator)
            slots = slot_order[i, 0].masked_fill(padding, -1)
            track_slots = track_steps = None
            if track:
                track_steps = torch.randint(0, preset.steps, (num_entries,), generator=generator)
                untracked = torch.randperm(self.live, generator=generator)[self.num_tracked :]
                track_steps[untracked] = -1
                track_steps[padding] = -1
                track_slots = slot_order[i, 1].masked_fill(padding, -1)
            if preset.sglang_layout:
                rows, caches = None, self._caches(rows_per_set, generator)
            else:
                rows, caches = torch.arange(num_entries) + i * num_entries, shared_caches
            moved = [
                None if t is None else t.to(device)
                for t in (slots, steps.masked_fill(padding, -1), rows, track_slots, track_steps)
            ]
            self.index_sets.append(CallIndices(*moved, caches))
        self._copy_buffers = None

    def _caches(self, rows: int, generator) -> list[torch.Tensor]:
        caches = []
        for kind in self.preset.kinds:
            if self.preset.sglang_layout and kind.name == "conv":
                caches.append(
                    window_cache(
                        self.preset.layers,
                        rows,
                        self.preset.steps,
                        kind,
                        self.preset.conv_kernel,
                        self.device,
                        generator,
                    )
                )
                continue
            cache = torch.empty(
                self.preset.layers,
                rows,
                self.preset.steps,
                *kind.entry,
                dtype=kind.intermediate_dtype,
                device=self.device,
            )
            fill_random(cache, generator)
            caches.append(cache)
        return caches

    def copy_buffers(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Source and destination of the roofline copy: as many bytes read and written."""
        if self._copy_buffers is None:
            half = max(self.bytes // 2, 1)
            self._copy_buffers = [
                (
                    torch.ones(half, dtype=torch.uint8, device=self.device),
                    torch.zeros(half, dtype=torch.uint8, device=self.device),
                )
                for _ in range(self.sets)
            ]
        return self._copy_buffers[i]

    def check(self, i: int) -> None:
        """Raises unless the pools hold index set i's applied copies exactly: a direct gather,
        quantized by quantization.quantize for a quantized kind."""
        index_set = self.index_sets[i]
        rows = index_set.rows
        if rows is None:
            rows = torch.arange(self.num_entries, device=self.device)
        for slots, steps in index_set.commit_sets():
            applied = (steps >= 0) & (slots >= 0)
            for kind, state, scales, cache in zip(
                self.preset.kinds, self.states, self.state_scales, index_set.caches
            ):
                gathered = cache[:, rows[applied], steps[applied]]
                if scales is None:
                    expected = [(state[:, slots[applied]], gathered.to(state.dtype))]
                else:
                    values, value_scales = quantize(
                        gathered,
                        len(kind.entry),
                        kind.groups,
                        kind.state_dtype,
                        dtype_max(kind.state_dtype),
                    )
                    expected = [
                        (state[:, slots[applied]].view(torch.uint8), values.view(torch.uint8)),
                        (scales[:, slots[applied]], value_scales),
                    ]
                for held, wanted in expected:
                    if not torch.equal(held, wanted):
                        raise AssertionError("result differs from the reference gather")

    def clear(self, i: int) -> None:
        for slots, _ in self.index_sets[i].commit_sets():
            for pool in self.states + [s for s in self.state_scales if s is not None]:
                pool[:, slots[slots >= 0]] = 0
