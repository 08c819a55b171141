// Quantizing a group of a full-precision state into an int8 or float8 pool, for both kernels:
// the formula of mamba_state_ext/quantization.py, which the results must match bit for bit.
// amax = max |x| over the group (NaN if any x is NaN); scale = amax / qmax; q = x / scale (IEEE
// divisions, in float32), clamped to [-qmax, qmax], rounded to nearest even into the pool's
// dtype; a group whose scale is 0 stores scale 0 and zeros.
#pragma once

#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Float8_e4m3fn.h>
#include <torch/headeronly/util/Float8_e5m2.h>
#include <torch/headeronly/util/Half.h>
#include <torch/headeronly/util/floating_point_utils.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "macros.h"

namespace mamba_state {

// The dtype of a quantized pool, and of the full-precision cache it is quantized from.
enum class QuantizedFormat : int32_t { kInt8, kFloat8E4M3, kFloat8E5M2 };
enum class QuantizedSource : int32_t { kFloat, kHalf, kBFloat16 };

// max(a, |b|), and NaN from then on once a NaN is met (fmaxf would drop it): a group holding a
// NaN gets a scale that is not finite.
MAMBA_STATE_HOST_DEVICE float max_magnitude(float a, float b) {
  const float magnitude = b < 0 ? -b : b;
  return (magnitude > a || magnitude != magnitude) && a == a ? magnitude : a;
}

// |x|'s bits, which order as |x| does for every x, a NaN's above infinity's: the CPU kernel's
// amax is the largest of these (an integer max, which vectorizes), then amax_of_bits.
MAMBA_STATE_HOST_DEVICE uint32_t magnitude_bits(float x) {
  return c10::detail::fp32_to_bits(x) & 0x7fffffffu;
}
MAMBA_STATE_HOST_DEVICE float amax_of_bits(uint32_t bits) {
  return bits > 0x7f800000u ? std::numeric_limits<float>::quiet_NaN()
                            : c10::detail::fp32_from_bits(bits);
}

// The bit layout of a float8 format, and the constants of float8_bits's formula.
template <int kBias, int kMantissaBits>
struct Float8Layout {
  // The float32 bits below the float8 mantissa.
  static constexpr int kShift = 23 - kMantissaBits;
  // float32 bits of the smallest normal float8 value, 2^(1 - bias).
  static constexpr uint32_t kSmallestNormal = uint32_t(127 - kBias + 1) << 23;
  // Added to the bits of 2^e, the bits of 2^(e + kShift): the float32 whose ulp is float8's ulp
  // at exponent e.
  static constexpr uint32_t kUlpOffset = uint32_t(kShift) << 23;
};

template <QuantizedFormat kFormat>
struct Float8Of;
template <>
struct Float8Of<QuantizedFormat::kFloat8E4M3> : Float8Layout<7, 3> {};
template <>
struct Float8Of<QuantizedFormat::kFloat8E5M2> : Float8Layout<15, 2> {};

// The float8 bits of a finite q, |q| at most the format's largest value, rounded to nearest even
// as torch's conversions (torch/headeronly/util/Float8_e4m3fn.h, Float8_e5m2.h) round it, with
// no branch, so that a loop vectorizes. With e the exponent of |q|, or the smallest normal's for
// a smaller |q| (float8's denormals share its ulp), |q| + 2^(e + kShift) rounds |q| to float8's
// ulp at e, to nearest even; the sum's bits less the addend's count those ulps, and float8's bits
// are that count plus e's distance from the smallest normal, in ulps.
template <QuantizedFormat kFormat>
MAMBA_STATE_HOST_DEVICE uint8_t float8_bits(float q) {
  using Layout = Float8Of<kFormat>;
  using c10::detail::fp32_from_bits;
  using c10::detail::fp32_to_bits;
  const uint32_t magnitude = magnitude_bits(q);
  const uint32_t own_exponent = magnitude & 0x7f800000u;
  const uint32_t exponent =
      own_exponent > Layout::kSmallestNormal ? own_exponent : Layout::kSmallestNormal;
  const uint32_t addend = exponent + Layout::kUlpOffset;
  const uint32_t ulps = fp32_to_bits(fp32_from_bits(magnitude) + fp32_from_bits(addend)) - addend;
  return static_cast<uint8_t>((ulps + ((exponent - Layout::kSmallestNormal) >> Layout::kShift)) |
                              (fp32_to_bits(q) >> 24 & 0x80));
}

// One value's bits in the pool's dtype, from x and its group's nonzero scale. The clamp is
// written so that it maps a NaN to -qmax, keeping it out of the conversions (the values of a
// NaN's group are unspecified), and so that the compiler vectorizes it.
template <QuantizedFormat kFormat>
MAMBA_STATE_HOST_DEVICE uint8_t quantize_scaled(float x, float scale, float qmax) {
  float q = x / scale;
  q = q > -qmax ? q : -qmax;
  q = q < qmax ? q : qmax;
  if constexpr (kFormat == QuantizedFormat::kInt8) {
#if defined(__CUDA_ARCH__)
    return static_cast<uint8_t>(static_cast<int8_t>(__float2int_rn(q)));
#else
    // Round to nearest even, as the default rounding mode adds 1.5 x 2^23 and takes it away
    // again (exact for |q| <= 127 < 2^22), in a form the compiler vectorizes.
    constexpr float kRounding = 12582912.0f;
    const float rounded = (q + kRounding) - kRounding;
    return static_cast<uint8_t>(static_cast<int8_t>(static_cast<int32_t>(rounded)));
#endif
  } else {
    return float8_bits<kFormat>(q);
  }
}

// The same for any scale: a group whose scale is 0 stores zeros.
template <QuantizedFormat kFormat>
MAMBA_STATE_HOST_DEVICE uint8_t quantize_value(float x, float scale, float qmax) {
  return scale == 0 ? 0 : quantize_scaled<kFormat>(x, scale, qmax);
}

// The largest finite value of a quantized dtype: the default qmax.
inline double largest_value(QuantizedFormat format) {
  switch (format) {
    case QuantizedFormat::kInt8: return 127;
    case QuantizedFormat::kFloat8E4M3:
      return static_cast<float>(std::numeric_limits<c10::Float8_e4m3fn>::max());
    case QuantizedFormat::kFloat8E5M2:
      return static_cast<float>(std::numeric_limits<c10::Float8_e5m2>::max());
  }
  return 0;
}

template <typename Src, QuantizedFormat kFormat>
struct QuantizePair {
  using Source = Src;
  static constexpr QuantizedFormat format = kFormat;
};

// Calls visit(QuantizePair<Src, Format>{}) for the source and format.
template <typename Visitor>
MAMBA_STATE_HOST_DEVICE void visit_quantization(QuantizedSource source, QuantizedFormat format,
                                                Visitor&& visit) {
  auto with_source = [&](auto source_value) {
    using Src = decltype(source_value);
    switch (format) {
      case QuantizedFormat::kInt8: return visit(QuantizePair<Src, QuantizedFormat::kInt8>{});
      case QuantizedFormat::kFloat8E4M3:
        return visit(QuantizePair<Src, QuantizedFormat::kFloat8E4M3>{});
      case QuantizedFormat::kFloat8E5M2:
        return visit(QuantizePair<Src, QuantizedFormat::kFloat8E5M2>{});
    }
  };
  switch (source) {
    case QuantizedSource::kFloat: return with_source(float{});
    case QuantizedSource::kHalf: return with_source(c10::Half{});
    case QuantizedSource::kBFloat16: return with_source(c10::BFloat16{});
  }
}

}  // namespace mamba_state
