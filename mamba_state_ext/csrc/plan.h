// Host side of both operators, shared by every kernel: check a call (checks.h), then translate it
// into the plain-data CopyPlan (copy_plan.h). Reads no index value.
#pragma once

#include "call.h"
#include "copy_plan.h"

namespace mamba_state {

// update: the commit (dst_slots, steps + step_offset) and, with track_slots, the track copies
// (track_slots, track_steps), both over src_rows.
CopyPlan plan_update(const UpdateCall& call);

// copy_slots: each pool is its own source, read at [layer, src_slots[n]].
CopyPlan plan_copy_slots(const CopySlotsCall& call);

}  // namespace mamba_state
