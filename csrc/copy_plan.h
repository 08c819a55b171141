// The copy plan shared by the CPU and CUDA kernels: what one call copies, described with plain
// pointers and 64-bit element strides, and the index rules of the contract. Everything here is
// plain data and inline __host__ __device__ code, so the host fills it once and both kernels (and
// the CPU emulation of the CUDA grid used by the tests) read the same fields the same way.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define MAMBA_STATE_HOST_DEVICE __host__ __device__
#else
#define MAMBA_STATE_HOST_DEVICE
#endif

namespace mamba_state {

// Entry dims (the *E of [L, C, *E]) accepted per state. Kept small because the plan is passed by
// value as a CUDA kernel argument.
constexpr int kMaxEntryDims = 8;

// How an element of intermediates[k] becomes an element of states[k].
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
  int64_t src_strides[kMaxEntryDims];  // in elements of the intermediate's dtype
};

// One state kind k: states[k] is [L, C, *E], intermediates[k] is [L, R, T, *E].
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

  // The first element of states[k][layer, slot] and of intermediates[k][layer, row, step].
  MAMBA_STATE_HOST_DEVICE char* dst_entry(int64_t layer, int64_t slot) const {
    return dst + (layer * dst_layer_stride + slot * dst_slot_stride) * dst_elem_size;
  }
  MAMBA_STATE_HOST_DEVICE const char* src_entry(int64_t layer, int64_t row, int64_t step) const {
    return src + (layer * src_layer_stride + row * src_row_stride + step * src_step_stride) *
                     src_elem_size;
  }
};

// A 1-D int32 or int64 index tensor.
struct IndexArray {
  const void* data;  // nullptr: the identity (entry n reads n); only src_rows may be absent
  int64_t stride;
  bool is_int64;

  MAMBA_STATE_HOST_DEVICE int64_t operator[](int64_t n) const {
    if (data == nullptr) return n;
    return is_int64 ? static_cast<const int64_t*>(data)[n * stride]
                    : static_cast<const int32_t*>(data)[n * stride];
  }
};

struct EntryIndices {
  IndexArray dst_slots;
  IndexArray steps;
  IndexArray src_rows;
  int64_t num_entries;
  int64_t step_offset;
  int64_t num_slots;  // C
  int64_t num_rows;   // R
  int64_t num_steps;  // T
};

// Bits of an entry's status: which bound an applied entry broke. 0 for applied and skipped entries.
enum EntryStatusBits : int32_t {
  kSlotOutOfRange = 1,
  kRowOutOfRange = 2,
  kStepOutOfRange = 4,
};

struct ResolvedEntry {
  bool skipped;    // step + step_offset < 0: nothing to do, nothing checked
  int32_t status;  // EntryStatusBits of a bad entry, 0 otherwise
  int64_t slot;
  int64_t row;
  int64_t step;

  MAMBA_STATE_HOST_DEVICE bool copies() const { return !skipped && status == 0; }
};

// The index rules of the contract, in one place.
MAMBA_STATE_HOST_DEVICE inline ResolvedEntry resolve_entry(const EntryIndices& indices,
                                                           int64_t n) {
  ResolvedEntry entry;
  entry.step = indices.steps[n] + indices.step_offset;
  entry.skipped = entry.step < 0;
  entry.status = 0;
  entry.slot = 0;
  entry.row = 0;
  if (entry.skipped) return entry;
  entry.slot = indices.dst_slots[n];
  entry.row = indices.src_rows[n];
  if (entry.slot < 0 || entry.slot >= indices.num_slots) entry.status |= kSlotOutOfRange;
  if (entry.row < 0 || entry.row >= indices.num_rows) entry.status |= kRowOutOfRange;
  if (entry.step >= indices.num_steps) entry.status |= kStepOutOfRange;
  return entry;
}

// Offsets, in elements, of element `element` (row-major over layout.sizes) from the entry's
// first element on each side.
MAMBA_STATE_HOST_DEVICE inline void entry_offsets(const EntryLayout& layout, int64_t element,
                                                  int64_t* dst_offset, int64_t* src_offset) {
  int64_t dst = 0;
  int64_t src = 0;
  for (int d = layout.ndim - 1; d > 0; --d) {
    const int64_t size = layout.sizes[d];
    // 64-bit division is a long software sequence on the GPU; most entries fit in 32 bits.
    int64_t quotient;
    int64_t index;
    if (((element | size) >> 32) == 0) {
      const uint32_t e32 = static_cast<uint32_t>(element);
      const uint32_t s32 = static_cast<uint32_t>(size);
      quotient = e32 / s32;
      index = e32 - static_cast<uint32_t>(quotient) * s32;
    } else {
      quotient = element / size;
      index = element - quotient * size;
    }
    dst += index * layout.dst_strides[d];
    src += index * layout.src_strides[d];
    element = quotient;
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

}  // namespace mamba_state
