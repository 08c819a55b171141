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

// One dim of a layout: its size and its strides on each side (for a group layout, the third
// is the scales').
struct Dim {
  int64_t size;
  int64_t strides[3];
};

// Orders the dims by the destination's stride, outermost first, so that writes are as contiguous
// as they can be (insertion sort: a few dims, and std::stable_sort allocates), and merges the
// dims that are contiguous on every side of `sides`. Returns the dims left.
int collapse(Dim* dims, int num_dims, int sides) {
  const auto before = [sides](const Dim& a, const Dim& b) {
    for (int side = 0; side < sides; ++side) {
      if (a.strides[side] != b.strides[side]) return a.strides[side] > b.strides[side];
    }
    return false;
  };
  for (int i = 1; i < num_dims; ++i) {
    for (int j = i; j > 0 && before(dims[j], dims[j - 1]); --j) std::swap(dims[j], dims[j - 1]);
  }
  int kept = 0;
  for (int i = 0; i < num_dims; ++i) {
    const Dim& dim = dims[i];
    bool contiguous = kept > 0;
    for (int side = 0; contiguous && side < sides; ++side) {
      contiguous = dims[kept - 1].strides[side] == dim.size * dim.strides[side];
    }
    if (contiguous) {
      dims[kept - 1].size *= dim.size;
      for (int side = 0; side < sides; ++side) dims[kept - 1].strides[side] = dim.strides[side];
    } else {
      dims[kept++] = dim;
    }
  }
  return kept;
}

StateLayout state_layout(Dim* dims, int num_dims, int64_t numel) {
  StateLayout layout{};
  layout.numel = numel;
  if (numel == 0) return layout;
  layout.ndim = collapse(dims, num_dims, 2);
  for (int d = 0; d < layout.ndim; ++d) {
    layout.sizes[d] = dims[d].size;
    layout.dst_strides[d] = dims[d].strides[0];
    layout.src_strides[d] = dims[d].strides[1];
  }
  return layout;
}

// The state dims of a pool ([L, C, *E], from dim 2) and of its source (from dim
// source_state_dim).
StateLayout collapse_state(const TensorMeta& state, const TensorMeta& source,
                           int64_t source_state_dim) {
  Dim dims[kMaxStateDims];
  int num_dims = 0;
  int64_t numel = 1;
  for (int64_t d = 2; d < state.dim; ++d) {
    const int64_t size = state.size(d);
    numel *= size;
    if (size != 1) {
      dims[num_dims++] = {size, {state.stride(d), source.stride(d - 2 + source_state_dim), 0}};
    }
  }
  return state_layout(dims, num_dims, numel);
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
  copy.quantized = -1;
  return copy;
}

// A kind quantized on commit: pool [L, C, *E] from cache [L, R, T, *E], one scale of
// scales [L, C, *S] per group. Its StateCopy's layout is one group's (of extent E[d] / S[d]
// along the dims the scales have, the whole of the others), its QuantizedCopy's groups the dims
// from one group to the next; left out with no layer or no group.
std::optional<std::pair<StateCopy, QuantizedCopy>> quantized_copy(const TensorMeta& state,
                                                                  const TensorMeta& source,
                                                                  const TensorMeta& scales,
                                                                  double quant_max) {
  Dim within[kMaxStateDims];
  Dim between[kMaxStateDims];
  int num_within = 0;
  int num_between = 0;
  int64_t group_numel = 1;
  int64_t count = 1;
  for (int64_t d = 0; d + 2 < state.dim; ++d) {
    const int64_t groups = d + 2 < scales.dim ? scales.size(d + 2) : 1;
    count *= groups;
    if (groups == 0) break;
    const int64_t extent = state.size(d + 2) / groups;
    group_numel *= extent;
    const int64_t dst = state.stride(d + 2);
    const int64_t src = source.stride(d + 3);
    if (extent != 1) within[num_within++] = {extent, {dst, src, 0}};
    if (groups != 1)
      between[num_between++] = {groups, {extent * dst, extent * src, scales.stride(d + 2)}};
  }
  if (count == 0 || state.size(0) == 0) return std::nullopt;
  StateCopy copy{};
  copy.dst = state.data;
  copy.src = source.data;
  copy.num_layers = state.size(0);
  copy.dst_layer_stride = state.stride(0);
  copy.dst_slot_stride = state.stride(1);
  copy.src_layer_stride = source.stride(0);
  copy.src_row_stride = source.stride(1);
  copy.src_step_stride = source.stride(2);
  copy.dst_elem_size = static_cast<int32_t>(state.element_size);
  copy.src_elem_size = static_cast<int32_t>(source.element_size);
  copy.conversion = Conversion::kCopyBytes;
  copy.layout = state_layout(within, num_within, group_numel);
  QuantizedCopy quantized{};
  quantized.scales = reinterpret_cast<float*>(scales.data);
  quantized.scale_layer_stride = scales.stride(0);
  quantized.scale_slot_stride = scales.stride(1);
  quantized.qmax = static_cast<float>(quant_max);
  quantized.format = *quantized_format(state.dtype);
  quantized.source = *quantized_source(source.dtype);
  GroupLayout& groups = quantized.groups;
  groups.count = count;
  groups.ndim = collapse(between, num_between, 3);
  for (int d = 0; d < groups.ndim; ++d) {
    groups.sizes[d] = between[d].size;
    groups.dst_strides[d] = between[d].strides[0];
    groups.src_strides[d] = between[d].strides[1];
    groups.scale_strides[d] = between[d].strides[2];
  }
  return std::pair(copy, quantized);
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
  const KindsScales scales = kind_scales(call);
  for (size_t k = 0; k < call.states.size(); ++k) {
    const TensorMeta& intermediate = call.intermediates[k];
    const KindScales& kind = scales[k];
    if (kind.state_scales && !kind.intermediate_scales) {
      if (auto copy =
              quantized_copy(call.states[k], intermediate, *kind.state_scales, kind.quant_max)) {
        copy->first.quantized = static_cast<int32_t>(plan.quantized.size());
        plan.quantized.push_back(copy->second);
        plan.states.push_back(copy->first);
      }
      continue;
    }
    if (auto copy = state_copy(call.states[k], intermediate, intermediate.stride(1),
                               intermediate.stride(2), 3)) {
      plan.states.push_back(*copy);
    }
    if (kind.intermediate_scales) {  // a quantized cache: its scales are one more raw copy
      const TensorMeta& cache_scales = *kind.intermediate_scales;
      if (auto copy = state_copy(*kind.state_scales, cache_scales, cache_scales.stride(1),
                                 cache_scales.stride(2), 3)) {
        plan.states.push_back(*copy);
      }
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
