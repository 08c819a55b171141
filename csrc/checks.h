// The argument checks of mamba_state::update and mamba_state::copy_slots, with the messages users
// see. Twin of mamba_state_ext/checks.py: the same checks in the same order with the same words
// (tests/error_cases.py holds both to one table). Reads no index values.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>

#include "copy_plan.h"

namespace mamba_state {

enum class Op { kUpdate, kCopySlots };

// Shapes, dtypes and devices (checks.check_update_args), then memory sharing (checks.check_no_overlap).
void check_update_args(at::TensorList states, at::TensorList intermediates,
                       const at::Tensor& dst_slots, const at::Tensor& steps,
                       const std::optional<at::Tensor>& src_rows,
                       const std::optional<at::Tensor>& entry_status,
                       const std::optional<at::Tensor>& track_slots,
                       const std::optional<at::Tensor>& track_steps);

// Shapes, dtypes and devices (checks.check_copy_slots_args), then memory sharing.
void check_copy_slots_args(at::TensorList states, const at::Tensor& src_slots,
                           const at::Tensor& dst_slots, const std::optional<at::Tensor>& mask,
                           const std::optional<at::Tensor>& entry_status);

// The message for entry n of index set `set`, which resolve_entry found bad (the first bound it
// broke); checks.describe_bad_entry.
std::string describe_bad_entry(Op op, const EntryIndices& indices, int set, int64_t n,
                               const ResolvedEntry& entry);

}  // namespace mamba_state
