"""The error matrix: every case of error_cases.py on every surface it names, with its exception,
its message, and nothing written; and every case the raw operator raises, against the compiled
operator in a child process on every device present (error_child.py), so that a crash is that
case's failure, not the end of the test run."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from error_cases import (
    CASES,
    COPY_SLOTS,
    FAKE,
    FALLBACK,
    OP,
    RANGE,
    UPDATE,
    WRAPPER,
    valid_call,
    wrapper_arguments,
)
from helpers import (
    COMPILED,
    COMPILED_CUDA,
    CUDA,
    TESTS,
    run_copy_slots_grid_on_cpu,
    run_cuda_grid_on_cpu,
)
from torch._subclasses.fake_tensor import FakeTensorMode

import mamba_state_ext
from mamba_state_ext import constants, fallback


def call_on(surface, call, op=UPDATE):
    if surface == OP:
        getattr(torch.ops.mamba_state, op)(**call)
    elif surface == FALLBACK:
        getattr(fallback, op)(**call)
    elif surface == WRAPPER:
        if op == COPY_SLOTS:
            mamba_state_ext.copy_slots(**call)
        else:
            mamba_state_ext.update(**wrapper_arguments(call))
    elif surface == FAKE:
        with FakeTensorMode(allow_non_fake_inputs=False) as mode:

            def fake(value):
                if isinstance(value, list):
                    return [fake(item) for item in value]
                return mode.from_tensor(value) if isinstance(value, torch.Tensor) else value

            getattr(torch.ops.mamba_state, op)(**{name: fake(v) for name, v in call.items()})


@pytest.mark.parametrize(
    "case,surface",
    [
        pytest.param(case, surface, id=f"{case.id}-{surface}")
        for case in CASES
        for surface in case.surfaces
    ],
)
def test_error(case, surface):
    if surface == OP and mamba_state_ext.backend().name == "compiled":
        pytest.skip("the compiled op's cases run in child processes (a crash ends only the child)")
    call = case.call()
    states = call["states"] if isinstance(call["states"], list) else []
    before = [state.clone() for state in states]
    with pytest.raises(case.exception) as raised:
        call_on(surface, call, case.op)
    message = str(raised.value)
    assert message.startswith(f"mamba_state.{case.op}: ")
    assert case.message in message
    for state, snapshot in zip(states, before):
        if state.device.type != "meta":  # a meta tensor has no data to compare
            assert torch.equal(state, snapshot), "an error must leave the pools untouched"


@pytest.mark.parametrize("surface", [OP, FALLBACK, WRAPPER, FAKE])
@pytest.mark.parametrize(
    "op,quantized", [(UPDATE, False), (UPDATE, True), (COPY_SLOTS, False)], ids=str
)
def test_valid_call_passes(surface, op, quantized):
    """The calls the cases edit are themselves valid, so each case fails for its own reason."""
    call_on(surface, valid_call(op, quantized=quantized), op)


OP_CASES = [case for case in CASES if OP in case.surfaces]
_child_outcomes = {}


def child_outcomes(device: str) -> dict:
    """Every OP case's outcome on the device, from error_child.py: a child that dies is restarted
    after the case it died in, which is recorded as that case's outcome."""
    if device in _child_outcomes:
        return _child_outcomes[device]
    outcomes, first = {}, 0
    environment = {"MAMBA_STATE_EXT_BACKEND": "compiled"}
    while first < len(OP_CASES):
        process = subprocess.run(
            [sys.executable, "-X", "faulthandler", "error_child.py", device, str(first)],
            cwd=TESTS,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **environment},
        )
        started = None
        for line in process.stdout.splitlines():
            record = json.loads(line)
            key = (record.pop("op"), record.pop("case"))
            if record:
                outcomes[key] = record
            else:
                started = key
        if process.returncode == 0:
            break
        if started is None or started in outcomes:  # it died outside any case
            pytest.fail(f"error_child.py {device} exited {process.returncode}: {process.stderr}")
        outcomes[started] = {"crashed": process.returncode, "stderr": process.stderr[-3000:]}
        first = [(case.op, case.id) for case in OP_CASES].index(started) + 1
    _child_outcomes[device] = outcomes
    return outcomes


# The entry_status bit of each bound a range case's message names.
STATUS_BITS = {
    "dst slot": constants.SLOT_OUT_OF_RANGE,
    "src row": constants.ROW_OUT_OF_RANGE,
    "src slot": constants.ROW_OUT_OF_RANGE,
    "(steps": constants.STEP_OUT_OF_RANGE,
    "track slot": constants.TRACK_SLOT_OUT_OF_RANGE,
    "(track_steps": constants.TRACK_STEP_OUT_OF_RANGE,
}


def expected_status(case) -> tuple[int, int]:
    """The bad entry of a range case, and the status bit it gets."""
    bad, bound = re.search(r"entry (\d+): (.*)", case.message).groups()
    [bit] = [bit for name, bit in STATUS_BITS.items() if name in bound]
    return int(bad), bit


@pytest.mark.parametrize(
    "case", [case for case in OP_CASES if case.where() == RANGE], ids=lambda case: case.id
)
def test_range_case_status_through_the_cuda_grid_on_cpu(case):
    """What the CUDA kernel reports for each range case, by its grid run on the CPU: the bit
    that expected_status reads from the case's message, as the CUDA child test expects."""
    call = case.call()
    if call.get("entry_status") is None:
        call["entry_status"] = torch.full((call["dst_slots"].numel(),), -1, dtype=torch.int32)
    run = run_cuda_grid_on_cpu if case.op == UPDATE else run_copy_slots_grid_on_cpu
    run(**call)
    bad, bit = expected_status(case)
    status = call["entry_status"].tolist()
    assert status == [bit if entry == bad else 0 for entry in range(len(status))]


@COMPILED
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[CUDA, COMPILED_CUDA])])
@pytest.mark.parametrize("case", OP_CASES, ids=lambda case: case.id)
def test_error_of_the_compiled_op_in_a_child_process(case, device):
    outcome = child_outcomes(device)[(case.op, case.id)]
    assert "crashed" not in outcome, (
        f"the process died (exit {outcome['crashed']}) instead of raising: {outcome['stderr']}"
    )
    if device != "cpu" and case.where() == RANGE:
        # On CUDA a bad index is reported, not raised: the bad entry's status has its bit, every
        # other entry 0 (applied).
        assert outcome["raised"] is None, outcome
        bad, bit = expected_status(case)
        expected = [bit if entry == bad else 0 for entry in range(len(outcome["status"]))]
        assert outcome["status"] == expected, outcome
        return
    expected = case.message.replace(
        "is on cpu", f"is on {device}:0" if device != "cpu" else "is on cpu"
    )
    assert outcome["raised"] == case.exception.__name__, outcome
    assert (
        outcome["message"].startswith(f"mamba_state.{case.op}: ") and expected in outcome["message"]
    ), outcome
    assert outcome["untouched"], "an error must leave the pools untouched"
