// Host side of mamba_state::update, shared by every kernel: the argument checks (with the messages
// users see) and the translation of tensors into the plain-data plan of copy_plan.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "copy_plan.h"

namespace mamba_state {

struct UpdatePlan {
  EntryIndices indices;
  std::vector<StateCopy> states;
  int32_t* entry_status;  // nullptr when the caller passed none
  int64_t entry_status_stride;
};

// Checks every argument (list lengths, ranks, layer counts, entry shapes, slot/row/step counts,
// dtype pairs, index dtypes, ranks and lengths, entry_status, devices, then memory overlap: no
// destination may share memory with itself or any other argument), throwing with a message that
// names the argument; then builds the plan. Reads no index values.
UpdatePlan plan_update(at::TensorList states, at::TensorList intermediates,
                       const at::Tensor& dst_slots, const at::Tensor& steps,
                       const std::optional<at::Tensor>& src_rows, int64_t step_offset,
                       const std::optional<at::Tensor>& entry_status);

// The message for entry n, which resolve_entry found bad (the first bound it broke).
std::string describe_bad_entry(const EntryIndices& indices, int64_t n, const ResolvedEntry& entry);

}  // namespace mamba_state
