#include "plan.h"

#include <optional>
#include <utility>

#include "checks.h"

namespace mamba_state {
namespace {

Conversion conversion_between(int32_t src, int32_t dst) {
  const Dtypes& dtypes = Dtypes::get();
  if (src == dst) return Conversion::kCopyBytes;
  if (src == dtypes.float32) {
    return dst == dtypes.float16 ? Conversion::kFloatToHalf : Conversion::kFloatToBFloat16;
  }
  if (src == dtypes.float16) {
    return dst == dtypes.float32 ? Conversion::kHalfToFloat : Conversion::kHalfToBFloat16;
  }
  return dst == dtypes.float32 ? Conversion::kBFloat16ToFloat : Conversion::kBFloat16ToHalf;
}

// The state dims of a pool ([L, C, *E], from dim 2) and of its source (from dim
// source_state_dim).
StateLayout collapse_state(const TensorMeta& state, const TensorMeta& source,
                           int64_t source_state_dim) {
  struct Dim {
    int64_t size, dst_stride, src_stride;
  };
  Dim dims[kMaxStateDims];
  int num_dims = 0;
  StateLayout layout{};
  layout.numel = 1;
  for (int64_t d = 2; d < state.dim; ++d) {
    const int64_t size = state.size(d);
    layout.numel *= size;
    if (size != 1)
      dims[num_dims++] = {size, state.stride(d), source.stride(d - 2 + source_state_dim)};
  }
  if (layout.numel == 0) return layout;
  // Walk the destination in memory order, so that writes are as contiguous as they can be
  // (insertion sort: a few dims, and std::stable_sort allocates).
  const auto before = [](const Dim& a, const Dim& b) {
    return a.dst_stride != b.dst_stride ? a.dst_stride > b.dst_stride : a.src_stride > b.src_stride;
  };
  for (int i = 1; i < num_dims; ++i) {
    for (int j = i; j > 0 && before(dims[j], dims[j - 1]); --j) std::swap(dims[j], dims[j - 1]);
  }
  for (int i = 0; i < num_dims; ++i) {
    const Dim& dim = dims[i];
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

IndexArray index_array(const std::optional<TensorMeta>& index) {
  if (!index) return {nullptr, 0, 0};
  return {index->data, index->stride(0), static_cast<int32_t>(index->element_size)};
}

IndexArray index_array(const TensorMeta& index) {
  return index_array(std::optional(index));
}

// The state kind of a plan: pool [L, C, *E] read from source, whose row and step strides are
// given (the state dims follow at source_state_dim). Empty kinds copy nothing.
std::optional<StateCopy> state_copy(const TensorMeta& state, const TensorMeta& source,
                                    int64_t row_stride, int64_t step_stride,
                                    int64_t source_state_dim) {
  StateCopy copy{};
  copy.layout = collapse_state(state, source, source_state_dim);
  if (copy.layout.numel == 0 || state.size(0) == 0) return std::nullopt;
  copy.dst = state.data;
  copy.src = source.data;
  copy.num_layers = state.size(0);
  copy.dst_layer_stride = state.stride(0);
  copy.dst_slot_stride = state.stride(1);
  copy.src_layer_stride = source.stride(0);
  copy.src_row_stride = row_stride;
  copy.src_step_stride = step_stride;
  copy.dst_elem_size = static_cast<int32_t>(state.element_size);
  copy.src_elem_size = static_cast<int32_t>(source.element_size);
  copy.conversion = conversion_between(source.dtype, state.dtype);
  return copy;
}

void set_entry_status(CopyPlan& plan, const std::optional<TensorMeta>& entry_status) {
  plan.entry_status = entry_status ? reinterpret_cast<int32_t*>(entry_status->data) : nullptr;
  plan.entry_status_stride = entry_status ? entry_status->stride(0) : 0;
}

}  // namespace

CopyPlan plan_update(const UpdateCall& call) {
  check_update(call);
  CopyPlan plan{};
  plan.op = Op::kUpdate;
  EntryIndices& indices = plan.indices;
  indices.sets[0] = {index_array(call.dst_slots),
                     index_array(call.steps),
                     index_array(call.src_rows),
                     index_array(std::nullopt),
                     call.step_offset,
                     false,
                     kSlotOutOfRange,
                     kRowOutOfRange,
                     kStepOutOfRange};
  indices.num_sets = 1;
  if (call.track_slots) {
    indices.sets[1] = {index_array(call.track_slots),
                       index_array(call.track_steps),
                       index_array(call.src_rows),
                       index_array(std::nullopt),
                       0,
                       false,
                       kTrackSlotOutOfRange,
                       kRowOutOfRange,
                       kTrackStepOutOfRange};
    indices.num_sets = 2;
  }
  indices.num_entries = call.dst_slots.numel();
  indices.num_slots = call.states[0].size(1);
  indices.num_rows = call.intermediates[0].size(1);
  indices.num_steps = call.intermediates[0].size(2);
  set_entry_status(plan, call.entry_status);
  plan.states.reserve(call.states.size());
  for (size_t k = 0; k < call.states.size(); ++k) {
    const TensorMeta& intermediate = call.intermediates[k];
    if (auto copy = state_copy(call.states[k], intermediate, intermediate.stride(1),
                               intermediate.stride(2), 3)) {
      plan.states.push_back(*copy);
    }
  }
  return plan;
}

CopyPlan plan_copy_slots(const CopySlotsCall& call) {
  check_copy_slots(call);
  CopyPlan plan{};
  plan.op = Op::kCopySlots;
  EntryIndices& indices = plan.indices;
  indices.sets[0] = {index_array(call.dst_slots),
                     index_array(std::nullopt),
                     index_array(call.src_slots),
                     index_array(call.mask),
                     0,
                     true,
                     kSlotOutOfRange,
                     kRowOutOfRange,
                     kStepOutOfRange};
  indices.num_sets = 1;
  indices.num_entries = call.dst_slots.numel();
  indices.num_slots = call.states[0].size(1);
  indices.num_rows = call.states[0].size(1);
  indices.num_steps = 1;
  set_entry_status(plan, call.entry_status);
  plan.states.reserve(call.states.size());
  for (const TensorMeta& state : call.states) {
    if (auto copy = state_copy(state, state, state.stride(1), 0, 2)) plan.states.push_back(*copy);
  }
  return plan;
}

}  // namespace mamba_state
