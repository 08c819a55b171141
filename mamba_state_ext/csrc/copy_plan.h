// What one call copies, as both kernels read it: plain pointers and 64-bit element strides, one
// StateCopy per state kind (two for a kind whose cache has scales: its values, its scales), a
// QuantizedCopy beside each kind quantized on commit, and the index sets. Filled once on the host
// (plan.cpp).
#pragma once

#include <cstdint>

#include "constants.h"
#include "conversions.h"
#include "errors.h"
#include "index_rules.h"
#include "inline_vector.h"
#include "macros.h"
#include "quantize.h"

namespace mamba_state {

// quotient = value / divisor and remainder = value % divisor, for non-negative values. 64-bit
// division is a long software sequence on the GPU; most values fit in 32 bits.
MAMBA_STATE_HOST_DEVICE void divide(int64_t value, int64_t divisor, int64_t* quotient,
                                    int64_t* remainder) {
  if (((value | divisor) >> 32) == 0) {
    const uint32_t v32 = static_cast<uint32_t>(value);
    const uint32_t d32 = static_cast<uint32_t>(divisor);
    const uint32_t q32 = v32 / d32;
    *quotient = q32;
    *remainder = v32 - q32 * d32;
  } else {
    *quotient = value / divisor;
    *remainder = value - *quotient * divisor;
  }
}

// The layout of one slot's state (the *E dims of [L, C, *E]) on both sides, after dropping size-1
// dims, ordering by destination stride (outermost first) and merging dims that are contiguous on
// both sides. A contiguous state becomes one dim.
struct StateLayout {
  int32_t ndim;
  int64_t numel;
  int64_t sizes[kMaxStateDims];
  int64_t dst_strides[kMaxStateDims];  // in elements of the pool's dtype
  int64_t src_strides[kMaxStateDims];  // in elements of the source's dtype
};

// One state kind k: the pool states[k] is [L, C, *E]; the source is intermediates[k]
// ([L, R, T, *E]) for update, and the pool itself (R = C, T = 1) for copy_slots.
struct StateCopy {
  char* dst;
  const char* src;
  int64_t num_layers;
  int64_t dst_layer_stride;
  int64_t dst_slot_stride;
  int64_t src_layer_stride;
  int64_t src_row_stride;
  int64_t src_step_stride;
  int32_t dst_elem_size;
  int32_t src_elem_size;
  Conversion conversion;  // kCopyBytes for a kind quantized on commit
  int32_t quantized;      // that kind's QuantizedCopy (its index in the plan or launch), else -1
  StateLayout layout;     // one group's, for a kind quantized on commit

  // The first element of states[k][layer, slot] and of the source's [layer, row, step].
  MAMBA_STATE_HOST_DEVICE char* dst_state(int64_t layer, int64_t slot) const {
    return dst + (layer * dst_layer_stride + slot * dst_slot_stride) * dst_elem_size;
  }
  MAMBA_STATE_HOST_DEVICE const char* src_state(int64_t layer, const ResolvedCopy& copy) const {
    return src +
           (layer * src_layer_stride + copy.row * src_row_stride + copy.step * src_step_stride) *
               src_elem_size;
  }
};

// The groups of a kind quantized on commit, one scale each: the dims from one group to the next
// (those the scales have, size-1 dims left out), outermost first.
struct GroupLayout {
  int32_t ndim;
  int64_t count;  // groups in one slot's state
  int64_t sizes[kMaxStateDims];
  int64_t dst_strides[kMaxStateDims];    // in pool elements
  int64_t src_strides[kMaxStateDims];    // in cache elements
  int64_t scale_strides[kMaxStateDims];  // in scale elements
};

// A kind quantized on commit: where its scales go, and how its groups lie.
struct QuantizedCopy {
  float* scales;  // the pool's, float32 [L, C, *S]
  int64_t scale_layer_stride;
  int64_t scale_slot_stride;
  float qmax;
  QuantizedFormat format;
  QuantizedSource source;
  GroupLayout groups;

  MAMBA_STATE_HOST_DEVICE float* slot_scales(int64_t layer, int64_t slot) const {
    return scales + layer * scale_layer_stride + slot * scale_slot_stride;
  }
  // Group `group`'s first element on each side, and its scale, as offsets (in elements) from
  // the state's first element and the slot's first scale.
  MAMBA_STATE_HOST_DEVICE void group_offsets(int64_t group, int64_t* dst, int64_t* src,
                                             int64_t* scale) const {
    *dst = *src = *scale = 0;
    for (int d = groups.ndim - 1; d >= 0; --d) {
      int64_t index;
      divide(group, groups.sizes[d], &group, &index);
      *dst += index * groups.dst_strides[d];
      *src += index * groups.src_strides[d];
      *scale += index * groups.scale_strides[d];
    }
  }
};

struct CopyPlan {
  Op op;
  EntryIndices indices;
  // Kinds with nothing to copy (no layers, an empty state) left out.
  InlineVector<StateCopy, 8> states;
  InlineVector<QuantizedCopy, 8> quantized;
  int32_t* entry_status;  // nullptr when the caller passed none
  int64_t entry_status_stride;
};

// Offsets, in elements, of element `element` (row-major over layout.sizes) from the state's
// first element on each side.
MAMBA_STATE_HOST_DEVICE void state_offsets(const StateLayout& layout, int64_t element,
                                           int64_t* dst_offset, int64_t* src_offset) {
  int64_t dst = 0;
  int64_t src = 0;
  for (int d = layout.ndim - 1; d > 0; --d) {
    int64_t index;
    divide(element, layout.sizes[d], &element, &index);
    dst += index * layout.dst_strides[d];
    src += index * layout.src_strides[d];
  }
  if (layout.ndim > 0) {
    dst += element * layout.dst_strides[0];
    src += element * layout.src_strides[0];
  }
  *dst_offset = dst;
  *src_offset = src;
}

}  // namespace mamba_state
