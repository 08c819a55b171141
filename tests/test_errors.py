"""The error matrix: every case of error_cases.py on every surface it names, with its exception,
its message, and nothing written."""

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import mamba_state_ext
from error_cases import CASES, COPY_SLOTS, FAKE, FALLBACK, OP, UPDATE, WRAPPER, valid_call
from mamba_state_ext import fallback


def call_on(surface, call, op=UPDATE):
    if surface == OP:
        getattr(torch.ops.mamba_state, op)(**call)
    elif surface == FALLBACK:
        getattr(fallback, op)(**call)
    elif surface == WRAPPER:
        if op == COPY_SLOTS:
            mamba_state_ext.copy_slots(**call)
        else:
            mamba_state_ext.update(**call)
    elif surface == FAKE:
        with FakeTensorMode(allow_non_fake_inputs=False) as mode:
            fake = {
                name: [mode.from_tensor(t) for t in value] if isinstance(value, list)
                else mode.from_tensor(value) if isinstance(value, torch.Tensor) else value
                for name, value in call.items()
            }
            getattr(torch.ops.mamba_state, op)(**fake)


@pytest.mark.parametrize(
    "case,surface",
    [pytest.param(case, surface, id=f"{case.id}-{surface}")
     for case in CASES for surface in case.surfaces],
)
def test_error(case, surface):
    call = valid_call(case.op)
    case.edit(call)
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
@pytest.mark.parametrize("op", [UPDATE, COPY_SLOTS])
def test_valid_call_passes(surface, op):
    """The call every case edits is itself valid, so each case fails for its own reason."""
    call_on(surface, valid_call(op), op)
