// The constants the C++ code shares with the Python side, written once, in
// mamba_state_ext/constants.json: every build path passes them as definitions
// (build_config.constant_defines(), CMakeLists.txt).
#pragma once

#include <cstdint>

#if !defined(MAMBA_STATE_MAX_STATE_DIMS) || !defined(MAMBA_STATE_OVERLAP_BUDGET) ||   \
    !defined(MAMBA_STATE_MAX_FOLLOWED_BLOCKS) || !defined(MAMBA_STATE_STATUS_SLOT) || \
    !defined(MAMBA_STATE_STATUS_ROW) || !defined(MAMBA_STATE_STATUS_STEP) ||          \
    !defined(MAMBA_STATE_STATUS_TRACK_SLOT) || !defined(MAMBA_STATE_STATUS_TRACK_STEP)
#error "built without the definitions of mamba_state_ext/constants.json (see build_config.py)"
#endif

namespace mamba_state {

// State dims (the *E of [L, C, *E]) of a state kind. Small, because the plan travels by value
// as a CUDA kernel argument.
constexpr int kMaxStateDims = MAMBA_STATE_MAX_STATE_DIMS;

// The memory-sharing decision (memory_overlap.cpp): the steps it takes before it answers
// conservatively, and the blocks of one view it follows against the whole of another.
constexpr int kOverlapBudget = MAMBA_STATE_OVERLAP_BUDGET;
constexpr int64_t kMaxFollowedBlocks = MAMBA_STATE_MAX_FOLLOWED_BLOCKS;

// Bits of entry_status: which bound an applied copy broke (0 for applied and skipped entries).
// update: the commit (slot, row, step) and the track copy (track slot, track step; the row is
// shared); copy_slots: slot (the destination) and row (the source slot).
enum EntryStatusBits : int32_t {
  kSlotOutOfRange = MAMBA_STATE_STATUS_SLOT,
  kRowOutOfRange = MAMBA_STATE_STATUS_ROW,
  kStepOutOfRange = MAMBA_STATE_STATUS_STEP,
  kTrackSlotOutOfRange = MAMBA_STATE_STATUS_TRACK_SLOT,
  kTrackStepOutOfRange = MAMBA_STATE_STATUS_TRACK_STEP,
};

}  // namespace mamba_state
