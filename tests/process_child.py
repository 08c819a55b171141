"""One process-level case of the compiled operator, in a fresh interpreter, as test_processes.py
starts it: what a test inside a long pytest process cannot show, because the library's CUDA
runtime is initialised there already by the time the case runs.

    python process_child.py CASE DEVICE

Prints ``ok CASE`` and exits 0 when the case's results are right; any failure is an exception
(exit 1) or a crash (the signal). Cases:

- ``graph-global``, ``graph-thread_local``: the process's first call of the operator is inside
  ``torch.cuda.graph`` capture in that capture mode (the library's statically linked runtime
  initialises, loads its module and queries occupancy during the capture); the graph is then
  replayed with new indices.
- ``thread``: the first call comes from a fresh ``threading.Thread`` (a thread on which nothing
  set the CUDA device).
- ``side-stream``: the first call comes under ``torch.cuda.stream(side)``, behind a sleep kernel on
  that stream: it must queue there, not on the default stream.
- ``teardown``: work is still queued when the interpreter exits; it must exit with status 0.

``CUDA_MODULE_LOADING`` (EAGER or LAZY), set by the parent, applies to the library's runtime too.
"""

from __future__ import annotations

import sys
import threading

import torch
from builders import assert_same_bits, make_indices, make_intermediate, make_pool

import mamba_state_ext
from mamba_state_ext.reference import loop_update

LAYERS, SLOTS, ROWS, STEPS = 3, 11, 6, 4


class Commit:
    """Two kinds (an SSM-like float32 state, a bfloat16 conv window read from an overlapping
    window cache) and one set of indices, with the expected pools."""

    def __init__(self, device: str, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.pools = [
            make_pool((LAYERS, SLOTS, 4, 12), torch.float32, "contiguous", generator, device),
            make_pool((LAYERS, SLOTS, 20, 3), torch.bfloat16, "contiguous", generator, device),
        ]
        self.caches = [
            make_intermediate(
                (LAYERS, ROWS, STEPS, 4, 12), torch.float32, "contiguous", generator, device
            ),
            make_intermediate(
                (LAYERS, ROWS, STEPS, 20, 3), torch.bfloat16, "window", generator, device
            ),
        ]
        self.generator = generator
        self.device = device
        self.slots, self.steps, self.rows = self.draw_indices()

    def draw_indices(self):
        return make_indices(ROWS, SLOTS, ROWS, STEPS, self.generator, device=self.device)

    def states(self):
        return [pool.view for pool in self.pools]

    def call(self) -> None:
        mamba_state_ext.update(
            self.states(), self.caches, self.slots, self.steps, src_rows=self.rows, check=False
        )

    def expected(self):
        """The pools as they must be after one call with the current indices."""
        pools = [pool.clone() for pool in self.pools]
        loop_update(
            [p.view for p in pools], self.caches, self.slots, self.steps, src_rows=self.rows
        )
        return pools

    def check(self, expected) -> None:
        for pool, reference in zip(self.pools, expected):
            assert_same_bits(pool.parent, reference.parent)


def graph(device: str, mode: str) -> None:
    commit = Commit(device)
    expected = commit.expected()
    captured = torch.cuda.CUDAGraph()
    with torch.cuda.graph(captured, capture_error_mode=mode):
        commit.call()  # the process's first call of the operator
    captured.replay()
    torch.cuda.synchronize()
    commit.check(expected)
    for _ in range(3):
        slots, steps, rows = commit.draw_indices()
        commit.slots.copy_(slots), commit.steps.copy_(steps), commit.rows.copy_(rows)
        expected = commit.expected()
        captured.replay()
        torch.cuda.synchronize()
        commit.check(expected)


def thread(device: str) -> None:
    commit = Commit(device)
    expected = commit.expected()
    errors = []

    def first_call():
        try:
            commit.call()
            if device != "cpu":
                torch.cuda.current_stream().synchronize()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    worker = threading.Thread(target=first_call)
    worker.start()
    worker.join()
    if errors:
        raise errors[0]
    commit.check(expected)


def side_stream(device: str) -> None:
    commit = Commit(device)
    expected = commit.expected()
    before = [pool.parent.clone() for pool in commit.pools]
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)  # ~0.1 s: the call must queue behind this
        commit.call()
        done = torch.cuda.Event()
        done.record(side)
    torch.cuda.default_stream().synchronize()
    assert not done.query(), "the call finished before the work queued ahead of it on its stream"
    with torch.cuda.stream(torch.cuda.default_stream()):
        unchanged = [pool.parent.cpu() for pool in commit.pools]
    for pool, original in zip(unchanged, before):
        assert_same_bits(pool, original.cpu())
    done.synchronize()
    commit.check(expected)


def teardown(device: str) -> None:
    commit = Commit(device)
    if device != "cpu":
        torch.cuda._sleep(100_000_000)  # the call below is still queued when the process exits
    commit.call()


CASES = {
    "graph-global": lambda device: graph(device, "global"),
    "graph-thread_local": lambda device: graph(device, "thread_local"),
    "thread": thread,
    "side-stream": side_stream,
    "teardown": teardown,
}
CUDA_ONLY = ("graph-global", "graph-thread_local", "side-stream")


def main() -> None:
    case, device = sys.argv[1], sys.argv[2]
    assert mamba_state_ext.backend().name == "compiled", mamba_state_ext.backend()
    if case in CUDA_ONLY and device == "cpu":
        raise SystemExit(f"{case} needs a CUDA device")
    CASES[case](device)
    print(f"ok {case}", flush=True)


if __name__ == "__main__":
    main()
