"""commit_verified_states: the MTP-verify commit in both forms servers use, against an independent
per-entry reference, with and without track copies, with the de-duplicated conv-window cache and
CUDA-graph padding; and the runnable example."""

import subprocess
import sys

import pytest
import torch
from helpers import DEVICES, ROOT, assert_same_bits, fill_random, make_intermediate

import mamba_state_ext

LAYERS, SLOTS, BATCH, DRAFTS, PADDING = 3, 20, 5, 4, 2


def reference_commit(
    pools,
    caches,
    state_indices,
    accepted,
    *,
    src_rows=None,
    lengths=False,
    track_indices=None,
    steps_to_track=None,
):
    """One entry at a time, in plain Python: what a commit means."""
    for n in range(state_indices.numel()):
        row = n if src_rows is None else int(src_rows[n])
        step = int(accepted[n]) - (1 if lengths else 0)
        copies = [(int(state_indices[n]), step)]
        if track_indices is not None:
            copies.append((int(track_indices[n]), int(steps_to_track[n])))
        for slot, copy_step in copies:
            if copy_step >= 0:
                for pool, cache in zip(pools, caches):
                    pool[:, slot] = cache[:, row, copy_step].to(pool.dtype)


def make_call(device, *, slot_indexed, seed):
    generator = torch.Generator().manual_seed(seed)
    rows = SLOTS if slot_indexed else BATCH + PADDING
    pools = [
        fill_random(torch.empty(LAYERS, SLOTS, 2, 6, 6), generator).to(device),
        fill_random(torch.empty(LAYERS, SLOTS, 16, 3, dtype=torch.bfloat16), generator).to(device),
    ]
    caches = [
        make_intermediate(
            (LAYERS, rows, DRAFTS, 2, 6, 6), torch.float32, "contiguous", generator, device
        ),
        make_intermediate(
            (LAYERS, rows, DRAFTS, 16, 3), torch.bfloat16, "window", generator, device
        ),
    ]
    slots = torch.randperm(SLOTS, generator=generator)[: 2 * BATCH]
    return generator, pools, caches, slots[:BATCH].to(device), slots[BATCH:].to(device)


def with_padding(tensor, value):
    """CUDA-graph padding: extra entries that must be ignored."""
    return torch.cat(
        [tensor, torch.full((PADDING,), value, dtype=tensor.dtype, device=tensor.device)]
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_seed_form(device, index_dtype):
    """Accepted lengths (0: nothing accepted), caches indexed by pool slot."""
    generator, pools, caches, state_indices, _ = make_call(device, slot_indexed=True, seed=1)
    state_indices = state_indices.to(index_dtype)
    lengths = torch.randint(0, DRAFTS + 1, (BATCH,), generator=generator).to(device, index_dtype)
    lengths[0] = 0
    expected = [pool.clone() for pool in pools]
    reference_commit(expected, caches, state_indices, lengths, src_rows=state_indices, lengths=True)
    mamba_state_ext.commit_verified_states(
        pools, caches, state_indices, lengths, src_rows=state_indices, accepted_are_lengths=True
    )
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool, reference)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("track", [False, True], ids=["commit", "commit+track"])
@pytest.mark.parametrize("check", [False, True], ids=["no-check", "check"])
def test_later_form(device, track, check):
    """Step indices (-1: none), caches indexed by batch position, padded as in a CUDA graph."""
    generator, pools, caches, state_indices, track_indices = make_call(
        device, slot_indexed=False, seed=2
    )
    accepted = torch.randint(-1, DRAFTS, (BATCH,), generator=generator).to(device)
    accepted[0] = -1
    steps_to_track = torch.randint(-1, DRAFTS, (BATCH,), generator=generator).to(device)
    arguments = (
        dict(
            track_indices=with_padding(track_indices, 0),
            steps_to_track=with_padding(steps_to_track, -1),
        )
        if track
        else {}
    )
    expected = [pool.clone() for pool in pools]
    reference_commit(
        expected,
        caches,
        state_indices,
        accepted,
        **(dict(track_indices=track_indices, steps_to_track=steps_to_track) if track else {}),
    )
    mamba_state_ext.commit_verified_states(
        pools,
        caches,
        with_padding(state_indices, 0),
        with_padding(accepted, -1),
        check=check,
        **arguments,
    )
    for pool, reference in zip(pools, expected):
        assert_same_bits(pool, reference)


def test_check_sees_the_track_copies():
    _, pools, caches, state_indices, track_indices = make_call("cpu", slot_indexed=False, seed=3)
    accepted = torch.zeros(BATCH, dtype=torch.long)
    with pytest.raises(IndexError, match=r"entry 0 and track entry 0 both write dst slot"):
        mamba_state_ext.commit_verified_states(
            pools,
            caches,
            with_padding(state_indices, 0),
            with_padding(accepted, -1),
            track_indices=with_padding(state_indices, 0),
            steps_to_track=with_padding(accepted, -1),
            check=True,
        )
    with pytest.raises(IndexError, match=r"entry 0: step 4 \(track_steps\[0\]\)"):
        mamba_state_ext.commit_verified_states(
            pools,
            caches,
            with_padding(state_indices, 0),
            with_padding(accepted, -1),
            track_indices=with_padding(track_indices, 0),
            steps_to_track=torch.full((BATCH + PADDING,), DRAFTS),
            check=True,
        )


def test_track_arguments_go_together():
    _, pools, caches, state_indices, _ = make_call("cpu", slot_indexed=False, seed=4)
    with pytest.raises(ValueError, match="pass track_indices and steps_to_track together"):
        mamba_state_ext.commit_verified_states(
            pools,
            caches,
            state_indices,
            torch.zeros(BATCH, dtype=torch.long),
            track_indices=state_indices,
        )


def test_example_runs():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "mtp_commit.py"),
            "--device",
            "cpu",
            "--steps",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "accepted lengths, slot-indexed caches" in result.stdout
    assert "accepted step indices, batch-indexed caches" in result.stdout
