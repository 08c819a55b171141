#include "update_plan.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>

namespace mamba_state {
namespace {

Conversion conversion_between(at::ScalarType src, at::ScalarType dst) {
  if (src == dst) return Conversion::kCopyBytes;
  switch (src) {
    case at::kFloat: return dst == at::kHalf ? Conversion::kFloatToHalf : Conversion::kFloatToBFloat16;
    case at::kHalf: return dst == at::kFloat ? Conversion::kHalfToFloat : Conversion::kHalfToBFloat16;
    default: return dst == at::kFloat ? Conversion::kBFloat16ToFloat : Conversion::kBFloat16ToHalf;
  }
}

// The entry dims of a pool ([L, C, *E], from dim 2) and of its source (from dim source_entry_dim).
EntryLayout collapse_entry(const at::Tensor& state, const at::Tensor& source,
                           int64_t source_entry_dim) {
  struct Dim {
    int64_t size, dst_stride, src_stride;
  };
  std::vector<Dim> dims;
  EntryLayout layout{};
  layout.numel = 1;
  for (int64_t d = 2; d < state.dim(); ++d) {
    const int64_t size = state.size(d);
    layout.numel *= size;
    if (size != 1) dims.push_back({size, state.stride(d), source.stride(d - 2 + source_entry_dim)});
  }
  if (layout.numel == 0) return layout;
  // Walk the destination in memory order, so that writes are as contiguous as they can be.
  std::stable_sort(dims.begin(), dims.end(), [](const Dim& a, const Dim& b) {
    return a.dst_stride != b.dst_stride ? a.dst_stride > b.dst_stride : a.src_stride > b.src_stride;
  });
  for (const Dim& dim : dims) {
    if (layout.ndim > 0) {
      const int last = layout.ndim - 1;
      if (layout.dst_strides[last] == dim.size * dim.dst_stride &&
          layout.src_strides[last] == dim.size * dim.src_stride) {
        layout.sizes[last] *= dim.size;
        layout.dst_strides[last] = dim.dst_stride;
        layout.src_strides[last] = dim.src_stride;
        continue;
      }
    }
    layout.sizes[layout.ndim] = dim.size;
    layout.dst_strides[layout.ndim] = dim.dst_stride;
    layout.src_strides[layout.ndim] = dim.src_stride;
    ++layout.ndim;
  }
  return layout;
}

IndexArray index_array(const std::optional<at::Tensor>& index) {
  if (!index) return {nullptr, 0, 0};
  return {index->data_ptr(), index->stride(0), static_cast<int32_t>(index->element_size())};
}

// The state kind k of a plan: pool [L, C, *E] read from source, whose layer, row and step strides
// are given (the entry dims follow at source_entry_dim). Empty kinds copy nothing.
std::optional<StateCopy> state_copy(const at::Tensor& state, const at::Tensor& source,
                                    int64_t row_stride, int64_t step_stride,
                                    int64_t source_entry_dim) {
  StateCopy copy{};
  copy.entry = collapse_entry(state, source, source_entry_dim);
  if (copy.entry.numel == 0 || state.size(0) == 0) return std::nullopt;
  copy.dst = static_cast<char*>(state.data_ptr());
  copy.src = static_cast<const char*>(source.data_ptr());
  copy.num_layers = state.size(0);
  copy.dst_layer_stride = state.stride(0);
  copy.dst_slot_stride = state.stride(1);
  copy.src_layer_stride = source.stride(0);
  copy.src_row_stride = row_stride;
  copy.src_step_stride = step_stride;
  copy.dst_elem_size = static_cast<int32_t>(state.element_size());
  copy.src_elem_size = static_cast<int32_t>(source.element_size());
  copy.conversion = conversion_between(source.scalar_type(), state.scalar_type());
  return copy;
}

void set_entry_status(UpdatePlan& plan, const std::optional<at::Tensor>& entry_status) {
  plan.entry_status = entry_status ? entry_status->data_ptr<int32_t>() : nullptr;
  plan.entry_status_stride = entry_status ? entry_status->stride(0) : 0;
}

}  // namespace

UpdatePlan plan_update(at::TensorList states, at::TensorList intermediates,
                       const at::Tensor& dst_slots, const at::Tensor& steps,
                       const std::optional<at::Tensor>& src_rows, int64_t step_offset,
                       const std::optional<at::Tensor>& entry_status,
                       const std::optional<at::Tensor>& track_slots,
                       const std::optional<at::Tensor>& track_steps) {
  check_update_args(states, intermediates, dst_slots, steps, src_rows, entry_status, track_slots,
                    track_steps);
  UpdatePlan plan{};
  plan.op = Op::kUpdate;
  EntryIndices& indices = plan.indices;
  indices.sets[0] = {index_array(dst_slots), index_array(steps), index_array(src_rows),
                     index_array(std::nullopt), step_offset, false,
                     kSlotOutOfRange, kRowOutOfRange, kStepOutOfRange};
  indices.num_sets = 1;
  if (track_slots) {
    indices.sets[1] = {index_array(track_slots), index_array(track_steps), index_array(src_rows),
                       index_array(std::nullopt), 0, false,
                       kTrackSlotOutOfRange, kRowOutOfRange, kTrackStepOutOfRange};
    indices.num_sets = 2;
  }
  indices.num_entries = dst_slots.numel();
  indices.num_slots = states[0].size(1);
  indices.num_rows = intermediates[0].size(1);
  indices.num_steps = intermediates[0].size(2);
  set_entry_status(plan, entry_status);
  for (size_t k = 0; k < states.size(); ++k) {
    const at::Tensor& intermediate = intermediates[k];
    if (auto copy = state_copy(states[k], intermediate, intermediate.stride(1),
                               intermediate.stride(2), 3)) {
      plan.states.push_back(*copy);
    }
  }
  return plan;
}

UpdatePlan plan_copy_slots(at::TensorList states, const at::Tensor& src_slots,
                           const at::Tensor& dst_slots, const std::optional<at::Tensor>& mask,
                           const std::optional<at::Tensor>& entry_status) {
  check_copy_slots_args(states, src_slots, dst_slots, mask, entry_status);
  UpdatePlan plan{};
  plan.op = Op::kCopySlots;
  EntryIndices& indices = plan.indices;
  indices.sets[0] = {index_array(dst_slots), index_array(std::nullopt), index_array(src_slots),
                     index_array(mask), 0, true,
                     kSlotOutOfRange, kRowOutOfRange, kStepOutOfRange};
  indices.num_sets = 1;
  indices.num_entries = dst_slots.numel();
  indices.num_slots = states[0].size(1);
  indices.num_rows = states[0].size(1);
  indices.num_steps = 1;
  set_entry_status(plan, entry_status);
  for (const at::Tensor& state : states) {
    if (auto copy = state_copy(state, state, state.stride(1), 0, 2)) plan.states.push_back(*copy);
  }
  return plan;
}

}  // namespace mamba_state
