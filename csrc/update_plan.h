// Host side of both operators, shared by every kernel: the translation of checked arguments into
// the plain-data plan of copy_plan.h (index sets, one StateCopy per state kind).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

#include "checks.h"
#include "copy_plan.h"

namespace mamba_state {

struct UpdatePlan {
  Op op;
  EntryIndices indices;
  std::vector<StateCopy> states;  // kinds with nothing to copy (no layers, empty entry) left out
  int32_t* entry_status;          // nullptr when the caller passed none
  int64_t entry_status_stride;
};

// mamba_state::update: checks every argument (checks.h), then builds the plan: the commit
// (dst_slots, steps + step_offset) and, with track_slots, the track copies (track_slots,
// track_steps), both over src_rows. Reads no index values.
UpdatePlan plan_update(at::TensorList states, at::TensorList intermediates,
                       const at::Tensor& dst_slots, const at::Tensor& steps,
                       const std::optional<at::Tensor>& src_rows, int64_t step_offset,
                       const std::optional<at::Tensor>& entry_status,
                       const std::optional<at::Tensor>& track_slots,
                       const std::optional<at::Tensor>& track_steps);

// mamba_state::copy_slots: each pool is its own source, read at [layer, src_slots[n]].
UpdatePlan plan_copy_slots(at::TensorList states, const at::Tensor& src_slots,
                           const at::Tensor& dst_slots, const std::optional<at::Tensor>& mask,
                           const std::optional<at::Tensor>& entry_status);

}  // namespace mamba_state
