"""Runs the error cases that the raw operator raises, one after another, in this process, and
prints one JSON line as each starts and one with its outcome, so that the parent
(test_errors.py) sees which case a crash took down:

    python error_child.py DEVICE FIRST_CASE

On CUDA an index out of range is not raised (the op cannot raise without a sync): the case then
passes an entry_status and reports it.
"""

from __future__ import annotations

import json
import sys

import torch
from error_cases import CASES, OP, RANGE

import mamba_state_ext  # noqa: F401 (registers the operators)


def to_device(call: dict, device: str) -> dict:
    """The call's tensors on the device, views of one storage still views of one storage."""
    moved_bases = {}

    def move(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type != "cpu":
            return tensor
        base = tensor if tensor._base is None else tensor._base
        if id(base) not in moved_bases:
            moved_bases[id(base)] = (base, base.to(device))  # keep base alive: ids stay unique
        moved = moved_bases[id(base)][1]
        return moved.as_strided(tensor.shape, tensor.stride(), tensor.storage_offset())

    def moved(value):
        if isinstance(value, list):
            return [moved(item) for item in value]
        return move(value) if isinstance(value, torch.Tensor) else value

    return {name: moved(value) for name, value in call.items()}


def run(case, device: str) -> dict:
    call = case.call()
    if device != "cpu":
        call = to_device(call, device)
        if case.where() == RANGE and call.get("entry_status") is None:
            call["entry_status"] = torch.full(
                (call["dst_slots"].numel(),), -1, dtype=torch.int32, device=device
            )
    states = call["states"]
    before = [state.clone() for state in states if state.device.type != "meta"]
    outcome = {"raised": None, "message": ""}
    try:
        getattr(torch.ops.mamba_state, case.op)(**call)
    except Exception as error:
        outcome = {"raised": type(error).__name__, "message": str(error)}
    after = [state for state in states if state.device.type != "meta"]
    outcome["untouched"] = all(torch.equal(a, b) for a, b in zip(after, before))
    if call.get("entry_status") is not None:
        outcome["status"] = call["entry_status"].tolist()
    return outcome


def main() -> None:
    device, first = sys.argv[1], int(sys.argv[2])
    cases = [case for case in CASES if OP in case.surfaces]
    for case in cases[first:]:
        print(json.dumps({"case": case.id, "op": case.op}), flush=True)
        print(json.dumps({"case": case.id, "op": case.op, **run(case, device)}), flush=True)


if __name__ == "__main__":
    main()
