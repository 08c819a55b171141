"""The constants the Python side shares with the C++ code, read from constants.json beside this
file (the C++ build reads the same file: build_config.constant_defines())."""

from __future__ import annotations

import json
from pathlib import Path

_CONSTANTS = json.loads((Path(__file__).parent / "constants.json").read_text())

MAX_STATE_DIMS: int = _CONSTANTS["max_state_dims"]
# The memory-sharing decision (overlap.py): steps before it answers conservatively, and blocks of
# one view it follows against the whole of another.
OVERLAP_BUDGET: int = _CONSTANTS["overlap_budget"]
MAX_FOLLOWED_BLOCKS: int = _CONSTANTS["max_followed_blocks"]

# Bits of entry_status: which bound an applied copy broke (0 for applied and skipped entries).
# update: the commit (slot, row, step) and the track copy (track slot, track step; the row is
# shared); copy_slots: slot (the destination) and row (the source slot).
SLOT_OUT_OF_RANGE: int = _CONSTANTS["entry_status"]["slot"]
ROW_OUT_OF_RANGE: int = _CONSTANTS["entry_status"]["row"]
STEP_OUT_OF_RANGE: int = _CONSTANTS["entry_status"]["step"]
TRACK_SLOT_OUT_OF_RANGE: int = _CONSTANTS["entry_status"]["track_slot"]
TRACK_STEP_OUT_OF_RANGE: int = _CONSTANTS["entry_status"]["track_step"]
