"""Every error a user can reach, with the exception and the words its message must contain.

test_errors.py runs each case on every surface it names, and every case the raw operator raises
against the compiled operator in a child process on every device (a crash is then that case's
failure); docs/contract.md's error table is this table (``python tests/error_cases.py`` prints
it; test_docs.py checks they agree). Each case edits a valid CPU call of its operator
(``valid_call``). One rule for the exception: ValueError for a bad argument, IndexError for an
index out of range, whichever backend serves the operator; TypeError only from the wrappers, for
something that is not a tensor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

# The surfaces: the raw op (compiled or fallback), the fallback called directly, the wrapper with
# check=True, and the shape-only fake kernel (torch.compile / FakeTensor).
OP, FALLBACK, WRAPPER, FAKE = "op", "fallback", "wrapper", "fake"
STRUCTURAL = (OP, FALLBACK, WRAPPER, FAKE)
NEEDS_DATA = (OP, FALLBACK, WRAPPER)  # overlap and index ranges: real tensors on the CPU


RAWS = (OP, FALLBACK, FAKE)  # the operator's own scale lists, which the wrapper builds
RAISED_BY = {
    STRUCTURAL: "op, wrapper, fake kernel",
    NEEDS_DATA: "op, wrapper",
    RAWS: "op, fake kernel",
    (WRAPPER,): "wrapper",
}
RANGE = "op on CPU, wrapper; on CUDA: entry_status"


UPDATE, COPY_SLOTS = "update", "copy_slots"


@dataclasses.dataclass(frozen=True)
class ErrorCase:
    id: str
    edit: Callable[[dict], None]
    exception: type[Exception]
    message: str
    surfaces: tuple[str, ...]
    raised_by: str = ""  # the table's words; by default from the surfaces
    op: str = UPDATE
    quantized: bool = False  # an edit of the call with a quantized kind

    def where(self) -> str:
        return self.raised_by or RAISED_BY[self.surfaces]

    def call(self) -> dict:
        """The valid call, edited: the case's arguments of the operator."""
        call = valid_call(self.op, quantized=self.quantized)
        self.edit(call)
        return call


def valid_call(op: str = UPDATE, *, quantized: bool = False) -> dict:
    """An SSM-like and a conv-like pool, 3 entries, everything in range; quantized: the SSM-like
    pool int8 with a scale per two elements, quantized on commit from its float32 cache."""
    if op == COPY_SLOTS:
        return dict(
            states=[torch.zeros(3, 10, 4), torch.zeros(3, 10, 5, 3, dtype=torch.bfloat16)],
            src_slots=torch.tensor([1, 2, 3]),
            dst_slots=torch.tensor([4, 5, 6]),
            mask=None,
            entry_status=None,
        )
    call = dict(
        states=[torch.zeros(3, 10, 4), torch.zeros(3, 10, 5, 3, dtype=torch.bfloat16)],
        intermediates=[torch.ones(3, 6, 4, 4), torch.ones(3, 6, 4, 5, 3, dtype=torch.bfloat16)],
        dst_slots=torch.tensor([1, 2, 3]),
        steps=torch.tensor([0, 1, 2]),
        src_rows=torch.tensor([0, 1, 2]),
        step_offset=0,
        entry_status=None,
    )
    if quantized:
        call["states"][0] = torch.zeros(3, 10, 4, dtype=torch.int8)
        call.update(scaled_kinds=[0], state_scales=[torch.zeros(3, 10, 2)])
    return call


def wrapper_arguments(call: dict) -> dict:
    """A call of the operator as the wrapper takes it: its scale lists aligned with the kinds."""
    if "scaled_kinds" not in call:
        return call
    call = dict(call)
    kinds = call.pop("scaled_kinds")

    def aligned(items):
        return [items[kinds.index(k)] if k in kinds else None for k in range(len(call["states"]))]

    call["state_scales"] = aligned(call.pop("state_scales"))
    for name in ("intermediate_scales", "quant_max"):
        if call.get(name) is not None:
            call[name] = aligned(call[name])
    return call


def _set(**changes):
    def edit(call):
        call.update(changes)

    return edit


def _set_item(name, k, value):
    def edit(call):
        call[name][k] = value(call) if callable(value) else value

    return edit


def _also(*edits):
    def edit(call):
        for one in edits:
            one(call)

    return edit


def _two_pools_one_buffer(call):
    buffer = torch.zeros(3, 10, 8)
    call["states"] = [buffer[:, :, :4], buffer[:, :, 2:6]]
    call["intermediates"] = [torch.ones(3, 6, 4, 4), torch.ones(3, 6, 4, 4)]


def _two_copy_pools_one_buffer(call):
    buffer = torch.zeros(3, 10, 8)
    call["states"] = [buffer[:, :, :4], buffer[:, :, 2:6]]


def _status_is_dst_slots(call):
    call["dst_slots"] = torch.tensor([1, 2, 3], dtype=torch.int32)
    call["entry_status"] = call["dst_slots"]


CASES = [
    ErrorCase(
        "empty-states",
        _set(states=[], intermediates=[]),
        ValueError,
        "states is empty: pass at least one state pool",
        STRUCTURAL,
    ),
    ErrorCase(
        "list-lengths",
        lambda c: c["intermediates"].pop(),
        ValueError,
        "states has 2 tensors but intermediates has 1",
        STRUCTURAL,
    ),
    ErrorCase(
        "state-rank",
        _set_item("states", 0, torch.zeros(3)),
        ValueError,
        "states[0] must be [layers, slots, *state] (got shape [3])",
        STRUCTURAL,
    ),
    ErrorCase(
        "intermediate-rank",
        _set_item("intermediates", 1, torch.zeros(3, 6)),
        ValueError,
        "intermediates[1] must be [layers, rows, steps, *state] (got shape [3, 6])",
        STRUCTURAL,
    ),
    ErrorCase(
        "entry-rank",
        _also(
            _set_item("states", 0, torch.zeros(3, 10, *[1] * 9)),
            _set_item("intermediates", 0, torch.zeros(3, 6, 4, *[1] * 9)),
        ),
        ValueError,
        "states[0] has 9 state dims; at most 8 are supported",
        STRUCTURAL,
    ),
    ErrorCase(
        "layers",
        _set_item("intermediates", 0, torch.ones(2, 6, 4, 4)),
        ValueError,
        "intermediates[0] has 2 layers but states[0] has 3",
        STRUCTURAL,
    ),
    ErrorCase(
        "entry-shape",
        _set_item("intermediates", 1, torch.ones(3, 6, 4, 5, 4, dtype=torch.bfloat16)),
        ValueError,
        "intermediates[1] has state shape [5, 4] but states[1] has [5, 3]",
        STRUCTURAL,
    ),
    ErrorCase(
        "slots-differ",
        _set_item("states", 1, torch.zeros(3, 9, 5, 3, dtype=torch.bfloat16)),
        ValueError,
        "states[1] has 9 slots but states[0] has 10: every pool must have the same slots",
        STRUCTURAL,
    ),
    ErrorCase(
        "rows-steps-differ",
        _set_item("intermediates", 1, torch.ones(3, 6, 3, 5, 3, dtype=torch.bfloat16)),
        ValueError,
        "intermediates[1] has 6 rows and 3 steps but intermediates[0] has 6 rows and 4 steps",
        STRUCTURAL,
    ),
    ErrorCase(
        "dtype-pair",
        _set_item("states", 0, torch.zeros(3, 10, 4, dtype=torch.int32)),
        ValueError,
        "states[0] is torch.int32 but intermediates[0] is torch.float32: only "
        "float32, float16 and bfloat16 convert to one another",
        STRUCTURAL,
    ),
    ErrorCase(
        "float8-pair",
        _set_item("states", 0, torch.zeros(3, 10, 4, dtype=torch.float8_e4m3fn)),
        ValueError,
        "states[0] is torch.float8_e4m3fn but intermediates[0] is torch.float32: only "
        "float32, float16 and bfloat16 convert to one another",
        STRUCTURAL,
    ),
    ErrorCase(
        "slots-dtype",
        _set(dst_slots=torch.tensor([1.0, 2.0, 3.0])),
        ValueError,
        "dst_slots must be int32 or int64 (got torch.float32)",
        STRUCTURAL,
    ),
    ErrorCase(
        "steps-dtype",
        _set(steps=torch.tensor([0, 1, 2], dtype=torch.int16)),
        ValueError,
        "steps must be int32 or int64 (got torch.int16)",
        STRUCTURAL,
    ),
    ErrorCase(
        "rows-dtype",
        _set(src_rows=torch.tensor([0, 1, 2], dtype=torch.uint8)),
        ValueError,
        "src_rows must be int32 or int64 (got torch.uint8)",
        STRUCTURAL,
    ),
    ErrorCase(
        "slots-rank",
        _set(dst_slots=torch.tensor([[1, 2, 3]])),
        ValueError,
        "dst_slots must be 1-D (got shape [1, 3])",
        STRUCTURAL,
    ),
    ErrorCase(
        "steps-length",
        _set(steps=torch.tensor([0, 1])),
        ValueError,
        "steps has 2 entries but dst_slots has 3",
        STRUCTURAL,
    ),
    ErrorCase(
        "rows-length",
        _set(src_rows=torch.tensor([0, 1, 2, 3])),
        ValueError,
        "src_rows has 4 entries but dst_slots has 3",
        STRUCTURAL,
    ),
    ErrorCase(
        "status-dtype",
        _set(entry_status=torch.zeros(3, dtype=torch.int64)),
        ValueError,
        "entry_status must be int32 (got torch.int64)",
        STRUCTURAL,
    ),
    ErrorCase(
        "status-shape",
        _set(entry_status=torch.zeros(4, dtype=torch.int32)),
        ValueError,
        "entry_status must have shape [3], one per entry (got [4])",
        STRUCTURAL,
    ),
    ErrorCase(
        "device",
        _set_item(
            "intermediates", 1, torch.ones(3, 6, 4, 5, 3, dtype=torch.bfloat16, device="meta")
        ),
        ValueError,
        "intermediates[1] is on meta but states[0] is on cpu",
        NEEDS_DATA,
    ),
    ErrorCase(
        "self-overlap",
        _set_item("states", 0, torch.zeros(3, 1, 4).expand(3, 10, 4)),
        ValueError,
        "states[0] has elements that share memory (an expanded or overlapping view)",
        NEEDS_DATA,
    ),
    ErrorCase(
        "overlapping-window-state",
        _set_item("states", 0, torch.zeros(3, 13).as_strided((3, 10, 4), (13, 1, 1))),
        ValueError,
        "states[0] has elements that share memory",
        NEEDS_DATA,
    ),
    ErrorCase(
        "states-overlap",
        _two_pools_one_buffer,
        ValueError,
        "states[0] shares memory with states[1]",
        NEEDS_DATA,
    ),
    ErrorCase(
        "state-overlaps-source",
        _set_item(
            "intermediates", 0, lambda c: c["states"][0][:, :6].unsqueeze(2).expand(3, 6, 4, 4)
        ),
        ValueError,
        "states[0] shares memory with intermediates[0]",
        NEEDS_DATA,
    ),
    ErrorCase(
        "status-overlaps-index",
        _status_is_dst_slots,
        ValueError,
        "entry_status shares memory with dst_slots",
        NEEDS_DATA,
    ),
    ErrorCase(
        "slot-range",
        _set(dst_slots=torch.tensor([1, 10, 3])),
        IndexError,
        "entry 1: dst slot 10 is out of range [0, 10)",
        NEEDS_DATA,
        RANGE,
    ),
    ErrorCase(
        "row-range",
        _set(src_rows=torch.tensor([0, 6, 2])),
        IndexError,
        "entry 1: src row 6 is out of range [0, 6)",
        NEEDS_DATA,
        RANGE,
    ),
    ErrorCase(
        "default-row-range",
        _set(src_rows=None, dst_slots=torch.arange(7), steps=torch.zeros(7, dtype=torch.long)),
        IndexError,
        "entry 6: src row 6 is out of range [0, 6)",
        NEEDS_DATA,
        RANGE,
    ),
    ErrorCase(
        "step-range",
        _set(steps=torch.tensor([0, 3, 2]), step_offset=1),
        IndexError,
        "entry 1: step 4 (steps[1] + step_offset) is out of range [0, 4)",
        NEEDS_DATA,
        RANGE,
    ),
    ErrorCase(
        "duplicate-slots",
        _set(dst_slots=torch.tensor([5, 2, 5])),
        IndexError,
        "entries 0 and 2 both write dst slot 5",
        (WRAPPER,),
    ),
    ErrorCase(
        "track-alone",
        _set(track_slots=torch.tensor([4, 5, 6])),
        ValueError,
        "pass track_slots and track_steps together, or neither",
        STRUCTURAL,
    ),
    ErrorCase(
        "track-slots-dtype",
        _set(track_slots=torch.tensor([4.0, 5.0, 6.0]), track_steps=torch.tensor([0, 1, 2])),
        ValueError,
        "track_slots must be int32 or int64 (got torch.float32)",
        STRUCTURAL,
    ),
    ErrorCase(
        "track-steps-length",
        _set(track_slots=torch.tensor([4, 5, 6]), track_steps=torch.tensor([0, 1])),
        ValueError,
        "track_steps has 2 entries but dst_slots has 3",
        STRUCTURAL,
    ),
    ErrorCase(
        "track-slot-range",
        _set(track_slots=torch.tensor([4, 10, 6]), track_steps=torch.tensor([0, 1, 2])),
        IndexError,
        "entry 1: track slot 10 is out of range [0, 10)",
        NEEDS_DATA,
        RANGE,
    ),
    ErrorCase(
        "track-step-range",
        _set(track_slots=torch.tensor([4, 5, 6]), track_steps=torch.tensor([0, 4, -1])),
        IndexError,
        "entry 1: step 4 (track_steps[1]) is out of range [0, 4)",
        NEEDS_DATA,
        RANGE,
    ),
    ErrorCase(
        "track-writes-committed-slot",
        _set(track_slots=torch.tensor([4, 2, 6]), track_steps=torch.tensor([0, 1, 2])),
        IndexError,
        "entry 1 and track entry 1 both write dst slot 2",
        (WRAPPER,),
    ),
    ErrorCase(
        "states-type",
        _set(states="pool"),
        TypeError,
        "states must be a tensor or a list of tensors",
        (WRAPPER,),
    ),
]


def _quantized_cache(scales):
    """The quantized kind's cache made quantized too (int8), with these scales."""

    def edit(call):
        call["intermediates"][0] = torch.ones(3, 6, 4, 4, dtype=torch.int8)
        call["intermediate_scales"] = [scales]

    return edit


def _wrapper_scales(**arguments):
    """The call as the wrapper takes it, with these scale arguments."""

    def edit(call):
        del call["scaled_kinds"], call["state_scales"]
        call.update(arguments)

    return edit


def _scales_share_the_cache(call):
    call["state_scales"] = [call["intermediates"][0].view(-1)[:60].view(3, 10, 2)]


# Quantized pools: edits of the call whose first kind is an int8 pool with scales.
QUANTIZED_CASES = [
    (
        "scaled-kinds",
        _set(scaled_kinds=[0, 0], state_scales=[torch.zeros(3, 10, 2)] * 2),
        ValueError,
        "scaled_kinds must be increasing kinds of states, in [0, 2) (got [0, 0])",
        RAWS,
    ),
    (
        "scaled-kinds-range",
        _set(scaled_kinds=[2]),
        ValueError,
        "scaled_kinds must be increasing kinds of states, in [0, 2) (got [2])",
        RAWS,
    ),
    (
        "state-scales-count",
        _set(state_scales=None),
        ValueError,
        "state_scales has 0 tensors but scaled_kinds has 1",
        RAWS,
    ),
    (
        "intermediate-scales-count",
        _set(intermediate_scales=[None, None]),
        ValueError,
        "intermediate_scales has 2 items but scaled_kinds has 1",
        RAWS,
    ),
    (
        "quant-max-count",
        _set(quant_max=[100.0, 120.0]),
        ValueError,
        "quant_max has 2 values but scaled_kinds has 1",
        RAWS,
    ),
    (
        "scales-on-a-float-pool",
        _set_item("states", 0, torch.zeros(3, 10, 4)),
        ValueError,
        "states[0] is torch.float32: only an int8, float8_e4m3fn or float8_e5m2 pool takes scales",
        STRUCTURAL,
    ),
    (
        "cache-cannot-be-quantized",
        _set_item("intermediates", 0, torch.ones(3, 6, 4, 4, dtype=torch.int32)),
        ValueError,
        "intermediates[0] is torch.int32: a quantized pool is fed from float32, float16 or "
        "bfloat16, or from a cache of its own dtype with intermediate_scales",
        STRUCTURAL,
    ),
    (
        "quantized-cache-dtype",
        _set(intermediate_scales=[torch.ones(3, 6, 4, 2)]),
        ValueError,
        "intermediates[0] is torch.float32 but states[0] is torch.int8: a cache with scales is "
        "copied as it is, in the pool's dtype",
        STRUCTURAL,
    ),
    (
        "scale-dtype",
        _set(state_scales=[torch.zeros(3, 10, 2, dtype=torch.float16)]),
        ValueError,
        "state_scales[0] must be float32 (got torch.float16)",
        STRUCTURAL,
    ),
    (
        "scale-rank",
        _set(state_scales=[torch.zeros(3, 10, 2, 2)]),
        ValueError,
        "state_scales[0] must be [layers, slots, *groups] with no more group dims than "
        "states[0] has state dims (1) (got shape [3, 10, 2, 2])",
        STRUCTURAL,
    ),
    (
        "scale-slots",
        _set(state_scales=[torch.zeros(3, 9, 2)]),
        ValueError,
        "state_scales[0] has 3 layers and 9 slots but states[0] has 3 and 10",
        STRUCTURAL,
    ),
    (
        "scale-does-not-divide",
        _set(state_scales=[torch.zeros(3, 10, 3)]),
        ValueError,
        "state_scales[0] has 3 groups along state dim 0, which does not divide its 4",
        STRUCTURAL,
    ),
    (
        "cache-scale-dtype",
        _quantized_cache(torch.ones(3, 6, 4, 2, dtype=torch.float64)),
        ValueError,
        "intermediate_scales[0] must be float32 (got torch.float64)",
        STRUCTURAL,
    ),
    (
        "cache-scale-shape",
        _quantized_cache(torch.ones(3, 6, 4, 1)),
        ValueError,
        "intermediate_scales[0] must be [layers, rows, steps, *groups] with the groups of "
        "state_scales[0]: [3, 6, 4, 2] (got [3, 6, 4, 1])",
        STRUCTURAL,
    ),
    (
        "quant-max-range",
        _set(quant_max=[200.0]),
        ValueError,
        "quant_max of states[0] must be positive as a float32 and at most torch.int8's largest "
        "value 127 (got 200)",
        STRUCTURAL,
    ),
    (
        "quant-max-not-positive",
        _set(quant_max=[0.0]),
        ValueError,
        "quant_max of states[0] must be positive as a float32 and at most torch.int8's largest "
        "value 127 (got 0)",
        STRUCTURAL,
    ),
    (
        "quant-max-negative-beyond-float",
        _set(quant_max=[-1e300]),
        ValueError,
        "quant_max of states[0] must be positive as a float32 and at most torch.int8's largest "
        "value 127 (got -1e+300)",
        STRUCTURAL,
    ),
    (
        "quant-max-zero-as-float32",
        _set(quant_max=[1e-50]),
        ValueError,
        "quant_max of states[0] must be positive as a float32 and at most torch.int8's largest "
        "value 127 (got 1e-50)",
        STRUCTURAL,
    ),
    (
        "scales-device",
        _set(state_scales=[torch.zeros(3, 10, 2, device="meta")]),
        ValueError,
        "state_scales[0] is on meta but states[0] is on cpu",
        NEEDS_DATA,
    ),
    (
        "scales-overlap-the-cache",
        _scales_share_the_cache,
        ValueError,
        "state_scales[0] shares memory with intermediates[0]",
        NEEDS_DATA,
    ),
    (
        "wrapper-scales-count",
        _wrapper_scales(state_scales=[torch.zeros(3, 10, 2)]),
        ValueError,
        "state_scales has 1 items but states has 2",
        (WRAPPER,),
    ),
    (
        "wrapper-cache-scales-count",
        _wrapper_scales(state_scales=[torch.zeros(3, 10, 2), None], intermediate_scales=[None]),
        ValueError,
        "intermediate_scales has 1 items but intermediates has 2",
        (WRAPPER,),
    ),
    (
        "wrapper-quant-max-count",
        _wrapper_scales(state_scales=[torch.zeros(3, 10, 2), None], quant_max=[100.0]),
        ValueError,
        "quant_max has 1 items but states has 2",
        (WRAPPER,),
    ),
    (
        "wrapper-cache-scales-without-pool-scales",
        _wrapper_scales(
            state_scales=[torch.zeros(3, 10, 2), None],
            intermediate_scales=[None, torch.ones(3, 6, 4, 5)],
        ),
        ValueError,
        "intermediate_scales[1] is given but state_scales[1] is None: a cache with scales goes "
        "into a pool with scales",
        (WRAPPER,),
    ),
    (
        "wrapper-quant-max-without-scales",
        _wrapper_scales(state_scales=[torch.zeros(3, 10, 2), None], quant_max=[None, 100.0]),
        ValueError,
        "quant_max[1] is given but state_scales[1] is None: only a pool with scales takes a "
        "quant_max",
        (WRAPPER,),
    ),
    (
        "wrapper-scales-type",
        _wrapper_scales(state_scales="scales"),
        TypeError,
        "state_scales must be None or a list of tensors and None",
        (WRAPPER,),
    ),
    (
        "wrapper-quant-max-type",
        _wrapper_scales(state_scales=[torch.zeros(3, 10, 2), None], quant_max="big"),
        TypeError,
        "quant_max must be None, a number, or a list of numbers and None",
        (WRAPPER,),
    ),
    (
        "wrapper-quant-max-too-large-for-a-float",
        _wrapper_scales(state_scales=[torch.zeros(3, 10, 2), None], quant_max=10**400),
        ValueError,
        "quant_max of states[0] must be positive as a float32 and at most torch.int8's largest "
        "value 127 (got inf)",
        (WRAPPER,),
    ),
]
CASES += [
    ErrorCase(case_id, edit, exception, message, surfaces, *more, quantized=True)
    for case_id, edit, exception, message, surfaces, *more in QUANTIZED_CASES
]

COPY_SLOTS_CASES = [
    (
        "copy-empty",
        _set(states=[]),
        ValueError,
        "states is empty: pass at least one state pool",
        STRUCTURAL,
    ),
    (
        "copy-rank",
        _set_item("states", 0, torch.zeros(3)),
        ValueError,
        "states[0] must be [layers, slots, *state] (got shape [3])",
        STRUCTURAL,
    ),
    (
        "copy-slots-differ",
        _set_item("states", 1, torch.zeros(3, 9, 5, 3)),
        ValueError,
        "states[1] has 9 slots but states[0] has 10: every pool must have the same slots",
        STRUCTURAL,
    ),
    (
        "copy-src-dtype",
        _set(src_slots=torch.tensor([1.0, 2.0, 3.0])),
        ValueError,
        "src_slots must be int32 or int64 (got torch.float32)",
        STRUCTURAL,
    ),
    (
        "copy-src-length",
        _set(src_slots=torch.tensor([1, 2])),
        ValueError,
        "src_slots has 2 entries but dst_slots has 3",
        STRUCTURAL,
    ),
    (
        "copy-mask-dtype",
        _set(mask=torch.tensor([1, 0, 1])),
        ValueError,
        "mask must be bool (got torch.int64)",
        STRUCTURAL,
    ),
    (
        "copy-mask-shape",
        _set(mask=torch.ones(4, dtype=torch.bool)),
        ValueError,
        "mask must have shape [3], one per entry (got [4])",
        STRUCTURAL,
    ),
    (
        "copy-device",
        _set_item("states", 1, torch.zeros(3, 10, 5, 3, device="meta")),
        ValueError,
        "states[1] is on meta but states[0] is on cpu",
        NEEDS_DATA,
    ),
    (
        "copy-states-overlap",
        _two_copy_pools_one_buffer,
        ValueError,
        "states[0] shares memory with states[1]",
        NEEDS_DATA,
    ),
    (
        "copy-dst-range",
        _set(dst_slots=torch.tensor([4, 10, 6])),
        IndexError,
        "entry 1: dst slot 10 is out of range [0, 10)",
        NEEDS_DATA,
        RANGE,
    ),
    (
        "copy-src-range",
        _set(src_slots=torch.tensor([1, 12, 3])),
        IndexError,
        "entry 1: src slot 12 is out of range [0, 10)",
        NEEDS_DATA,
        RANGE,
    ),
    (
        "copy-duplicate-dst",
        _set(dst_slots=torch.tensor([4, 4, 6])),
        IndexError,
        "entries 0 and 1 both write dst slot 4",
        (WRAPPER,),
    ),
    (
        "copy-read-written",
        _set(src_slots=torch.tensor([1, 4, 3])),
        IndexError,
        "entry 1 reads src slot 4, which entry 0 writes",
        (WRAPPER,),
    ),
    (
        "copy-states-type",
        _set(states="pool"),
        TypeError,
        "states must be a tensor or a list of tensors",
        (WRAPPER,),
    ),
]
CASES += [
    ErrorCase(case_id, edit, exception, message, surfaces, *more, op=COPY_SLOTS)
    for case_id, edit, exception, message, surfaces, *more in COPY_SLOTS_CASES
]


def markdown_table() -> str:
    """docs/contract.md's error table."""
    rows = ["| op | exception | message (example) | raised by |", "|---|---|---|---|"]
    for case in CASES:
        message = case.message.replace("|", "\\|")
        rows.append(f"| {case.op} | `{case.exception.__name__}` | {message} | {case.where()} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
