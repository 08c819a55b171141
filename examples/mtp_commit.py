"""A hybrid model's MTP-verify commit, as a server's model runner does it, in Qwen3-Next's shapes
(TP4, scaled down to run on a CPU in seconds): a few simulated decode steps with random acceptance
and prefix-cache tracking, each committed by one call of mamba_state_ext.commit_verified_states and
checked against the advanced-indexing code servers run today, in both forms.

    python examples/mtp_commit.py [--device cuda] [--steps 5]
"""

from __future__ import annotations

import argparse

import torch

import mamba_state_ext

# Qwen3-Next-80B-A3B at TP4 has 36 linear-attention layers, SSM states [8, 128, 128] float32 and
# conv windows [2048, 3] bfloat16; scaled down here, same dtypes and ranks.
LAYERS, HEADS, HEAD_DIM, CONV_DIM, CONV_WIDTH = 6, 8, 32, 512, 3
POOL_SLOTS, BATCH, DRAFTS = 48, 8, 4


def commit_accepted_lengths(
    ssm_pool, conv_pool, ssm_cache, conv_cache, state_indices, accepted_lengths
):
    """Advanced indexing, with accepted lengths (0: none) and caches indexed by pool slot (as in
    SGLang after PR 10586)."""
    mask = accepted_lengths > 0
    slots, steps = state_indices[mask], accepted_lengths[mask] - 1
    ssm_pool[:, slots] = ssm_cache[:, slots, steps].to(ssm_pool.dtype)
    conv_pool[:, slots] = conv_cache[:, slots, steps].to(conv_pool.dtype)


def commit_accepted_steps(
    ssm_pool,
    conv_pool,
    ssm_cache,
    conv_cache,
    state_indices,
    accepted_steps,
    track_indices,
    steps_to_track,
):
    """Advanced indexing, with accepted step indices (-1: none), caches indexed by batch
    position, and the prefix-cache track copy."""
    positions = torch.arange(state_indices.numel(), device=state_indices.device)
    for slots, steps in ((state_indices, accepted_steps), (track_indices, steps_to_track)):
        mask = steps >= 0
        for pool, cache in ((ssm_pool, ssm_cache), (conv_pool, conv_cache)):
            pool[:, slots[mask]] = cache[:, positions[mask], steps[mask]].to(pool.dtype)


def pools(device):
    ssm = torch.randn(LAYERS, POOL_SLOTS, HEADS, HEAD_DIM, HEAD_DIM, device=device)
    conv = torch.randn(LAYERS, POOL_SLOTS, CONV_DIM, CONV_WIDTH, device=device).bfloat16()
    return ssm, conv


def conv_windows(buffer):
    """The de-duplicated conv cache: DRAFTS overlapping windows over one [.., D, DRAFTS+W-1]
    buffer per request, as an as_strided view [L, R, DRAFTS, D, W]."""
    layers, rows, dim, width = buffer.shape
    s = buffer.stride()
    return buffer.as_strided(
        (layers, rows, DRAFTS, dim, width - DRAFTS + 1), (s[0], s[1], s[3], s[2], s[3])
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5, help="decode steps to simulate")
    args = parser.parse_args()
    device = args.device
    generator = torch.Generator().manual_seed(0)
    rand = lambda *shape, high: torch.randint(0, high, shape, generator=generator).to(device)  # noqa: E731
    print(f"backend: {mamba_state_ext.backend()}")

    # Caches indexed by pool slot, accepted lengths (0: nothing accepted).
    ssm_pool, conv_pool = pools(device)
    expected = [t.clone() for t in (ssm_pool, conv_pool)]
    for step in range(args.steps):
        ssm_cache = torch.randn(
            LAYERS, POOL_SLOTS, DRAFTS, HEADS, HEAD_DIM, HEAD_DIM, device=device
        )
        conv_cache = torch.randn(LAYERS, POOL_SLOTS, DRAFTS, CONV_DIM, CONV_WIDTH, device=device)
        state_indices = torch.randperm(POOL_SLOTS, generator=generator)[:BATCH].to(device)
        accepted_lengths = rand(BATCH, high=DRAFTS + 1)
        commit_accepted_lengths(*expected, ssm_cache, conv_cache, state_indices, accepted_lengths)
        mamba_state_ext.commit_verified_states(
            [ssm_pool, conv_pool],
            [ssm_cache, conv_cache],
            state_indices,
            accepted_lengths,
            src_rows=state_indices,
            accepted_are_lengths=True,
        )
        assert all(torch.equal(a, b) for a, b in zip((ssm_pool, conv_pool), expected)), step
    print(f"accepted lengths, slot-indexed caches: {args.steps} steps agree")

    # Batch-indexed caches (the conv cache as de-duplicated windows), step
    # indices (-1: none), track copies, and padding entries as a CUDA-graph batch carries them.
    ssm_pool, conv_pool = pools(device)
    expected = [t.clone() for t in (ssm_pool, conv_pool)]
    padded = BATCH + 2
    for step in range(args.steps):
        ssm_cache = torch.randn(LAYERS, padded, DRAFTS, HEADS, HEAD_DIM, HEAD_DIM, device=device)
        conv_cache = conv_windows(
            torch.randn(LAYERS, padded, CONV_DIM, DRAFTS + CONV_WIDTH - 1, device=device).bfloat16()
        )
        slots = torch.randperm(POOL_SLOTS, generator=generator)[: 2 * BATCH].to(device)
        state_indices, track_indices = slots[:BATCH], slots[BATCH:]
        accepted_steps = rand(BATCH, high=DRAFTS + 1) - 1
        steps_to_track = torch.where(rand(BATCH, high=2).bool(), rand(BATCH, high=DRAFTS), -1)
        pad = lambda t, value: torch.cat([t, torch.full((2,), value, device=device)])  # noqa: E731
        commit_accepted_steps(
            *expected,
            ssm_cache,
            conv_cache,
            state_indices,
            accepted_steps,
            track_indices,
            steps_to_track,
        )
        mamba_state_ext.commit_verified_states(
            [ssm_pool, conv_pool],
            [ssm_cache, conv_cache],
            pad(state_indices, 0),
            pad(accepted_steps, -1),
            track_indices=pad(track_indices, 0),
            steps_to_track=pad(steps_to_track, -1),
        )
        assert all(torch.equal(a, b) for a, b in zip((ssm_pool, conv_pool), expected)), step
    print(
        f"accepted step indices, batch-indexed caches, track copies, padding: "
        f"{args.steps} steps agree"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
