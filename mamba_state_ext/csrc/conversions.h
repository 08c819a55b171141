// How an element of a source becomes an element of a pool, for both kernels: raw bytes for the
// same dtype, or through float (as Tensor.to converts: round to nearest even, denormals kept,
// NaN stays NaN) between float32, float16 and bfloat16. The one list of element types both
// kernels instantiate.
#pragma once

#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <cstdint>
#include <type_traits>

#include "macros.h"

namespace mamba_state {

enum class Conversion : int32_t {
  kCopyBytes,  // same dtype: raw bytes, any dtype
  kFloatToHalf,
  kFloatToBFloat16,
  kHalfToFloat,
  kHalfToBFloat16,
  kBFloat16ToFloat,
  kBFloat16ToHalf,
};

template <typename Src, typename Dst>
MAMBA_STATE_HOST_DEVICE Dst convert_value(Src value) {
  return static_cast<Dst>(static_cast<float>(value));
}

// One element of any dtype, moved as raw bytes (torch's element sizes are 1, 2, 4, 8 and 16) in
// one machine word, or two for 16 bytes (which torch aligns to 8 at least).
struct alignas(8) SixteenBytes {
  uint64_t low;
  uint64_t high;
};
template <int kBytes>
using ElementBytes = std::conditional_t<
    kBytes == 1, uint8_t,
    std::conditional_t<
        kBytes == 2, uint16_t,
        std::conditional_t<kBytes == 4, uint32_t,
                           std::conditional_t<kBytes == 8, uint64_t, SixteenBytes>>>>;

template <int kBytes>
struct ElementSizeTag {
  static constexpr int value = kBytes;
};

// Calls visit(ElementSizeTag<B>{}) for an element size of 1, 2, 4, 8 or 16 bytes: every size a
// torch dtype has.
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

template <typename Src, typename Dst>
struct ConvertPair {
  using Source = Src;
  using Dest = Dst;
};
struct CopyBytesTag {};

// An element-at-a-time op: load from the source, store to the pool.
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

// Calls visit(CopyBytesTag{}) or visit(ConvertPair<Src, Dst>{}) for the conversion.
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
      visit_element_bytes(element_size,
                          [&](auto size) { visit(CopyElement<decltype(size)::value>{}); });
    } else {
      visit(ConvertElement<typename Types::Source, typename Types::Dest>{});
    }
  });
}

}  // namespace mamba_state
