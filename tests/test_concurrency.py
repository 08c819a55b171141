"""Sharing memory safely, many threads, many calls, and streams."""

import os
import threading

import pytest
import torch
from helpers import CUDA, DEVICES, IMPLEMENTATIONS, assert_same_bits, make_indices

import mamba_state_ext
from mamba_state_ext.reference import loop_update


@pytest.mark.parametrize("implementation", ["op", "fallback"])
def test_disjoint_parts_of_one_buffer_are_accepted(implementation):
    """Pools and caches carved from one allocation, at disjoint addresses: safe, and accepted."""
    buffer = torch.randn(2 * 3 * 8 * 4 + 3 * 4 * 2 * 4)
    pool = buffer[: 2 * 3 * 8 * 4].view(2, 3, 8, 4)[:, :, :5]
    cache = buffer[2 * 3 * 8 * 4 :].view(3, 4, 2, 4)
    state = pool.permute(1, 0, 2, 3)  # [L=3, C=2, 5, 4]... entries of [5, 4]
    cache = cache.unsqueeze(3).expand(3, 4, 2, 5, 4)  # a read-only broadcast source is fine
    expected = buffer.clone()
    expected_state = expected[: 2 * 3 * 8 * 4].view(2, 3, 8, 4)[:, :, :5].permute(1, 0, 2, 3)
    loop_update(
        [expected_state], [cache], torch.tensor([1]), torch.tensor([1]), src_rows=torch.tensor([3])
    )
    IMPLEMENTATIONS[implementation](
        [state], [cache], torch.tensor([1]), torch.tensor([1]), src_rows=torch.tensor([3])
    )
    assert_same_bits(buffer, expected)


@pytest.mark.parametrize("device", DEVICES)
def test_threads_on_disjoint_pools(device):
    """Eight threads, each committing into its own pools, 25 times: every result right."""
    errors = []

    def worker(seed):
        try:
            generator = torch.Generator().manual_seed(seed)
            pool = torch.zeros(3, 16, 64, 33, device=device)
            cache = torch.randn(3, 8, 4, 64, 33, generator=generator).to(device)
            for _ in range(25):
                slots, steps, rows = make_indices(8, 16, 8, 4, generator, device=device)
                expected = pool.clone()
                loop_update([expected], [cache], slots, steps, src_rows=rows)
                mamba_state_ext.update([pool], [cache], slots, steps, src_rows=rows, check=False)
                if device == "cuda":
                    torch.cuda.current_stream().synchronize()
                assert_same_bits(pool, expected)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("implementation", ["op", "fallback"])
def test_ten_thousand_calls_leave_memory_flat(device, implementation):
    call = IMPLEMENTATIONS[implementation]
    states = [
        torch.zeros(2, 8, 16, device=device),
        torch.zeros(2, 8, 5, 3, device=device, dtype=torch.bfloat16),
    ]
    caches = [torch.randn(2, 4, 3, 16, device=device), torch.randn(2, 4, 3, 5, 3, device=device)]
    slots = torch.tensor([6, 1, 3, 0], device=device)
    steps = torch.tensor([2, -1, 0, 1], device=device)
    status = torch.empty(4, dtype=torch.int32, device=device)
    for _ in range(1000):  # warm-up: allocator caches, lazy initialization
        call(states, caches, slots, steps, entry_status=status)
    host_before = resident_bytes()
    device_before = torch.cuda.memory_allocated() if device == "cuda" else 0
    for _ in range(10_000):
        call(states, caches, slots, steps, entry_status=status)
    if device == "cuda":
        torch.cuda.synchronize()
        assert torch.cuda.memory_allocated() == device_before
    assert resident_bytes() - host_before < 8 << 20, "host memory grew by 8 MiB or more"


@CUDA
def test_indices_on_another_device_are_an_error():
    states = [torch.zeros(2, 8, 16, device="cuda")]
    caches = [torch.randn(2, 4, 3, 16, device="cuda")]
    with pytest.raises(ValueError, match=r"dst_slots is on cpu but states\[0\] is on cuda:0"):
        torch.ops.mamba_state.update(
            states, caches, torch.tensor([1]), torch.tensor([0], device="cuda")
        )
