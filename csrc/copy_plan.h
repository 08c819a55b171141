// The copy plan shared by the CPU and CUDA kernels: what one call copies, described with plain
// pointers and 64-bit element strides, and the index rules of the contract. Everything here is
// plain data and inline __host__ __device__ code, so the host fills it once and both kernels (and
// the CPU run of the CUDA grid used by the tests) read the same fields the same way.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define MAMBA_STATE_HOST_DEVICE __host__ __device__ inline
#else
#define MAMBA_STATE_HOST_DEVICE inline
#endif

namespace mamba_state {

// Entry dims (the *E of [L, C, *E]) accepted per state. Kept small because the plan is passed by
// value as a CUDA kernel argument.
constexpr int kMaxEntryDims = 8;

// How an element of the source becomes an element of states[k].
enum class Conversion : int32_t {
  kCopyBytes,  // same dtype: raw bytes, any dtype
  kFloatToHalf,
  kFloatToBFloat16,
  kHalfToFloat,
  kHalfToBFloat16,
  kBFloat16ToFloat,
  kBFloat16ToHalf,
};

// The entry dims after dropping size-1 dims, ordering by destination stride (outermost first) and
// merging dims that are contiguous on both sides. A contiguous entry becomes one dim.
struct EntryLayout {
  int32_t ndim;
  int64_t numel;
  int64_t sizes[kMaxEntryDims];
  int64_t dst_strides[kMaxEntryDims];  // in elements of the state's dtype
  int64_t src_strides[kMaxEntryDims];  // in elements of the source's dtype
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
  Conversion conversion;
  EntryLayout entry;

  // The first element of states[k][layer, slot] and of the source's [layer, row, step].
  MAMBA_STATE_HOST_DEVICE char* dst_entry(int64_t layer, int64_t slot) const {
    return dst + (layer * dst_layer_stride + slot * dst_slot_stride) * dst_elem_size;
  }
  MAMBA_STATE_HOST_DEVICE const char* src_entry(int64_t layer, int64_t row, int64_t step) const {
    return src + (layer * src_layer_stride + row * src_row_stride + step * src_step_stride) *
                     src_elem_size;
  }
};

// A 1-D int32, int64 or bool index tensor.
struct IndexArray {
  const void* data;  // nullptr: absent (see IndexSet for what each absent array means)
  int64_t stride;
  int32_t element_size;  // 1 (bool), 4 (int32) or 8 (int64)

  MAMBA_STATE_HOST_DEVICE bool present() const { return data != nullptr; }
  MAMBA_STATE_HOST_DEVICE int64_t operator[](int64_t n) const {
    switch (element_size) {
      case 8: return static_cast<const int64_t*>(data)[n * stride];
      case 4: return static_cast<const int32_t*>(data)[n * stride];
      default: return static_cast<const uint8_t*>(data)[n * stride];
    }
  }
};

// Bits of an entry's status: which bound an applied copy broke. 0 for applied and skipped entries.
// update: the commit (1, 2, 4) and the track copy (8, 16; the row is shared); copy_slots: 1, 2.
enum EntryStatusBits : int32_t {
  kSlotOutOfRange = 1,
  kRowOutOfRange = 2,  // copy_slots: the source slot
  kStepOutOfRange = 4,
  kTrackSlotOutOfRange = 8,
  kTrackStepOutOfRange = 16,
};

// One set of N copies: entry n copies source [row, step] into pool slot dst_slots[n], unless it
// is skipped. The commit and the track copies of update are two sets over the same rows.
struct IndexSet {
  IndexArray dst_slots;
  IndexArray steps;     // absent: step 0 (copy_slots)
  IndexArray src_rows;  // absent: row n (the request's position in the batch)
  IndexArray mask;      // absent: every entry; else entry n applies only where mask[n] != 0
  int64_t step_offset;
  bool negative_row_skips;  // copy_slots: a negative source slot skips, as a negative dst does
  int32_t slot_bit;
  int32_t row_bit;
  int32_t step_bit;
};

constexpr int kMaxIndexSets = 2;

// The index sets of one call and the bounds they are checked against. A task is one (set, entry)
// pair, numbered set-major: task t is entry t % num_entries of set t / num_entries.
struct EntryIndices {
  IndexSet sets[kMaxIndexSets];
  int32_t num_sets;
  int64_t num_entries;
  int64_t num_slots;  // C
  int64_t num_rows;   // R
  int64_t num_steps;  // T

  MAMBA_STATE_HOST_DEVICE int64_t num_tasks() const { return num_sets * num_entries; }
};

struct ResolvedEntry {
  bool skipped;    // nothing to do, nothing checked
  int32_t status;  // EntryStatusBits of a bad copy, 0 otherwise
  int64_t slot;
  int64_t row;
  int64_t step;

  MAMBA_STATE_HOST_DEVICE bool copies() const { return !skipped && status == 0; }
};

// The index rules of the contract, in one place (mirrored by checks.resolve_entries). An entry is
// skipped when its mask is false, its step (+ step_offset) is negative, its destination slot is
// negative (PAD_SLOT_ID), or, in copy_slots, its source slot is negative; a skipped entry's other
// indices are not checked. Otherwise each index past its bound sets that bound's bit.
MAMBA_STATE_HOST_DEVICE ResolvedEntry resolve_entry(const EntryIndices& indices, int set,
                                                           int64_t n) {
  const IndexSet& index_set = indices.sets[set];
  ResolvedEntry entry{true, 0, 0, 0, 0};
  if (index_set.mask.present() && index_set.mask[n] == 0) return entry;
  entry.step = index_set.steps.present() ? index_set.steps[n] + index_set.step_offset : 0;
  entry.slot = index_set.dst_slots[n];
  entry.row = index_set.src_rows.present() ? index_set.src_rows[n] : n;
  if (entry.step < 0 || entry.slot < 0 || (index_set.negative_row_skips && entry.row < 0)) {
    return entry;
  }
  entry.skipped = false;
  if (entry.slot >= indices.num_slots) entry.status |= index_set.slot_bit;
  if (entry.row < 0 || entry.row >= indices.num_rows) entry.status |= index_set.row_bit;
  if (entry.step >= indices.num_steps) entry.status |= index_set.step_bit;
  return entry;
}

// Entry n's status over every set: the bits of each copy it asked for and that broke a bound.
MAMBA_STATE_HOST_DEVICE int32_t entry_status(const EntryIndices& indices, int64_t n) {
  int32_t status = 0;
  for (int set = 0; set < indices.num_sets; ++set) status |= resolve_entry(indices, set, n).status;
  return status;
}

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

// Offsets, in elements, of element `element` (row-major over layout.sizes) from the entry's
// first element on each side.
MAMBA_STATE_HOST_DEVICE void entry_offsets(const EntryLayout& layout, int64_t element,
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

// One element of any dtype, moved as raw bytes (torch's element sizes are 1, 2, 4, 8 and 16),
// as one machine word (two for 16 bytes, which torch aligns to 8 at least).
struct alignas(8) SixteenBytes {
  uint64_t low;
  uint64_t high;
};
template <int kBytes>
using ElementBytes = std::conditional_t<
    kBytes == 1, uint8_t,
    std::conditional_t<kBytes == 2, uint16_t,
                       std::conditional_t<kBytes == 4, uint32_t,
                                          std::conditional_t<kBytes == 8, uint64_t, SixteenBytes>>>>;

template <int kBytes>
struct ElementSizeTag {
  static constexpr int value = kBytes;
};

// Calls visit(ElementSizeTag<B>{}) for an element size of 1, 2, 4, 8 or 16 bytes (any other size
// is refused by the plan, so it never gets here).
template <typename Visitor>
MAMBA_STATE_HOST_DEVICE void visit_element_bytes(int32_t element_size, Visitor&& visit) {
  switch (element_size) {
    case 1: return visit(ElementSizeTag<1>{});
    case 2: return visit(ElementSizeTag<2>{});
    case 4: return visit(ElementSizeTag<4>{});
    case 8: return visit(ElementSizeTag<8>{});
    default: return visit(ElementSizeTag<16>{});
  }
}

// Through float, as Tensor.to converts: round to nearest even, denormals kept, NaN stays NaN.
template <typename Src, typename Dst>
MAMBA_STATE_HOST_DEVICE Dst convert_value(Src value) {
  return static_cast<Dst>(static_cast<float>(value));
}

template <typename Src, typename Dst>
struct ConvertPair {
  using Source = Src;
  using Dest = Dst;
};
struct CopyBytesTag {};

// One element moved by both kernels' element-at-a-time paths: raw bytes, or converted.
template <int kBytes>
struct CopyElement {
  using Value = ElementBytes<kBytes>;
  MAMBA_STATE_HOST_DEVICE static Value load(const char* src) {
    return *reinterpret_cast<const Value*>(src);
  }
  MAMBA_STATE_HOST_DEVICE static void store(char* dst, const Value& value) {
    *reinterpret_cast<Value*>(dst) = value;
  }
};

template <typename Src, typename Dst>
struct ConvertElement {
  using Value = Dst;
  MAMBA_STATE_HOST_DEVICE static Value load(const char* src) {
    return convert_value<Src, Dst>(*reinterpret_cast<const Src*>(src));
  }
  MAMBA_STATE_HOST_DEVICE static void store(char* dst, const Value& value) {
    *reinterpret_cast<Value*>(dst) = value;
  }
};

// Calls visit(CopyBytesTag{}) or visit(ConvertPair<Src, Dst>{}) for the conversion: the one list
// of element types both kernels instantiate.
template <typename Visitor>
MAMBA_STATE_HOST_DEVICE void visit_conversion(Conversion conversion, Visitor&& visit) {
  using c10::BFloat16;
  using c10::Half;
  switch (conversion) {
    case Conversion::kCopyBytes: return visit(CopyBytesTag{});
    case Conversion::kFloatToHalf: return visit(ConvertPair<float, Half>{});
    case Conversion::kFloatToBFloat16: return visit(ConvertPair<float, BFloat16>{});
    case Conversion::kHalfToFloat: return visit(ConvertPair<Half, float>{});
    case Conversion::kHalfToBFloat16: return visit(ConvertPair<Half, BFloat16>{});
    case Conversion::kBFloat16ToFloat: return visit(ConvertPair<BFloat16, float>{});
    case Conversion::kBFloat16ToHalf: return visit(ConvertPair<BFloat16, Half>{});
  }
}

// Calls visit(Element{}) with a kind's element-at-a-time op: CopyElement<element_size> for a
// same-dtype copy, ConvertElement<Src, Dst> for a conversion.
template <typename Visitor>
MAMBA_STATE_HOST_DEVICE void visit_element_op(Conversion conversion, int32_t element_size,
                                              Visitor&& visit) {
  visit_conversion(conversion, [&](auto types) {
    using Types = decltype(types);
    if constexpr (std::is_same_v<Types, CopyBytesTag>) {
      visit_element_bytes(element_size, [&](auto size) {
        visit(CopyElement<decltype(size)::value>{});
      });
    } else {
      visit(ConvertElement<typename Types::Source, typename Types::Dest>{});
    }
  });
}

}  // namespace mamba_state
