// The CPU kernel of both operators: resolve every entry, raising for the first bad one before
// anything is written, then apply its copies in parallel pieces of about kPieceBytes each.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../build_info.h"
#include "../call.h"
#include "../checks.h"
#include "../inline_vector.h"
#include "../operators.h"
#include "../plan.h"
#include "../quantize.h"

namespace mamba_state {
namespace {

// Work is split into pieces of about this many bytes, so that large SSM entries and small conv
// entries alike spread evenly over threads.
constexpr int64_t kPieceBytes = 64 * 1024;
// Consecutive groups are quantized in batches of at most this many source bytes (and groups;
// a larger group is a batch of its own): the amaxes of all, then their scales, then their values,
// read again from L1, while each group's loop prefetches the same group of the next batch, so
// that the amax pass finds a batch's values already on their way from memory.
constexpr int64_t kBatchBytes = 8192;
constexpr int64_t kBatchGroups = 64;
// A batch's values are quantized in chunks of at most this many source bytes, each asking for as
// many bytes of the next batch.
constexpr int64_t kPrefetchChunkBytes = 512;
constexpr int64_t kCacheLineBytes = 64;

template <typename Element>
void copy_run(char* dst, int64_t dst_step, const char* src, int64_t src_step, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    Element::store(dst + i * dst_step, Element::load(src + i * src_step));
  }
}

// A row of kLength elements (0: of length elements, not known when compiled).
template <typename Element, int kLength>
void copy_row(char* dst, int64_t dst_step, const char* src, int64_t src_step, int64_t length) {
  if constexpr (kLength == 0) {
    copy_run<Element>(dst, dst_step, src, src_step, length);
  } else {
    for (int i = 0; i < kLength; ++i) {
      Element::store(dst + i * dst_step, Element::load(src + i * src_step));
    }
  }
}

template <int kLength>
struct RowLength {
  static constexpr int value = kLength;
};

// Calls visit(RowLength<L>{}) with L the row length where it is a conv window's (K - 1 of 2, 3
// or 4), else 0.
template <typename Visitor>
void visit_row_length(int64_t length, Visitor&& visit) {
  switch (length) {
    case 2: return visit(RowLength<2>{});
    case 3: return visit(RowLength<3>{});
    case 4: return visit(RowLength<4>{});
    default: return visit(RowLength<0>{});
  }
}

// Elements [begin, end) of one slot's state, for one element type pair. Strides are in bytes here.
template <typename Element>
void copy_state_elements(const StateCopy& copy, char* dst, const char* src, int64_t begin,
                         int64_t end) {
  const StateLayout& layout = copy.layout;
  const int64_t dst_size = copy.dst_elem_size;
  const int64_t src_size = copy.src_elem_size;
  if (layout.ndim <= 1) {  // one run: the contiguous case
    const int64_t dst_step = layout.ndim == 1 ? layout.dst_strides[0] * dst_size : 0;
    const int64_t src_step = layout.ndim == 1 ? layout.src_strides[0] * src_size : 0;
    dst += begin * dst_step;
    src += begin * src_step;
    if (copy.conversion == Conversion::kCopyBytes && dst_step == dst_size && src_step == src_size) {
      std::memcpy(dst, src, static_cast<size_t>((end - begin) * dst_size));
    } else {
      copy_run<Element>(dst, dst_step, src, src_step, end - begin);
    }
    return;
  }
  const int inner = layout.ndim - 1;
  const int64_t run_length = layout.sizes[inner];
  const int64_t dst_step = layout.dst_strides[inner] * dst_size;
  const int64_t src_step = layout.src_strides[inner] * src_size;
  if (layout.ndim == 2) {
    // Rows of a few elements with a fixed stride (a conv window): walk them without dividing,
    // whole rows in a loop of their own, unrolled for the short rows of conv windows.
    int64_t row;
    int64_t column;
    divide(begin, run_length, &row, &column);
    const int64_t dst_row = layout.dst_strides[0] * dst_size;
    const int64_t src_row = layout.src_strides[0] * src_size;
    char* dst_at = dst + row * dst_row + column * dst_step;
    const char* src_at = src + row * src_row + column * src_step;
    int64_t remaining = end - begin;
    if (column != 0) {  // the end of a row the piece starts inside
      const int64_t count = std::min(run_length - column, remaining);
      copy_run<Element>(dst_at, dst_step, src_at, src_step, count);
      remaining -= count;
      dst_at += dst_row - column * dst_step;
      src_at += src_row - column * src_step;
    }
    const int64_t whole_rows = remaining / run_length;
    visit_row_length(run_length, [&](auto length) {
      for (int64_t r = 0; r < whole_rows; ++r, dst_at += dst_row, src_at += src_row) {
        copy_row<Element, decltype(length)::value>(dst_at, dst_step, src_at, src_step, run_length);
      }
    });
    copy_run<Element>(dst_at, dst_step, src_at, src_step, remaining - whole_rows * run_length);
    return;
  }
  for (int64_t element = begin; element < end;) {
    const int64_t count = std::min(run_length - element % run_length, end - element);
    int64_t dst_offset;
    int64_t src_offset;
    state_offsets(layout, element, &dst_offset, &src_offset);
    copy_run<Element>(dst + dst_offset * dst_size, dst_step, src + src_offset * src_size, src_step,
                      count);
    element += count;
  }
}

// Calls visit(dst, src) for each element of a state or group of this layout, in the layout's
// order (strides in elements; element sizes in bytes).
template <typename Visit>
void for_each_element(const StateLayout& layout, char* dst, int64_t dst_size, const char* src,
                      int64_t src_size, Visit&& visit) {
  if (layout.numel == 0) return;
  if (layout.ndim == 0) {
    visit(dst, src);
    return;
  }
  const int inner = layout.ndim - 1;
  const int64_t dst_step = layout.dst_strides[inner] * dst_size;
  const int64_t src_step = layout.src_strides[inner] * src_size;
  int64_t index[kMaxStateDims] = {};
  for (;;) {
    for (int64_t i = 0; i < layout.sizes[inner]; ++i) visit(dst + i * dst_step, src + i * src_step);
    int d = inner - 1;
    for (; d >= 0; --d) {  // the next run: count up the outer dims
      dst += layout.dst_strides[d] * dst_size;
      src += layout.src_strides[d] * src_size;
      if (++index[d] < layout.sizes[d]) break;
      dst -= layout.sizes[d] * layout.dst_strides[d] * dst_size;
      src -= layout.sizes[d] * layout.src_strides[d] * src_size;
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

// The loops of a contiguous group: the largest magnitude's bits of a run of values (an integer
// max, which vectorizes), and the run quantized with its group's nonzero scale. The portable
// loops, which the compiler vectorizes.
template <typename Src, QuantizedFormat kFormat>
struct PortableRun {
  __attribute__((always_inline)) static uint32_t amax_bits(const Src* values, int64_t count) {
    uint32_t bits = 0;
    for (int64_t i = 0; i < count; ++i) {
      bits = std::max(bits, magnitude_bits(static_cast<float>(values[i])));
    }
    return bits;
  }

  __attribute__((always_inline)) static void quantize(const Src* values, uint8_t* quantized,
                                                      int64_t count, float scale, float qmax) {
    for (int64_t i = 0; i < count; ++i) {
      quantized[i] = quantize_scaled<kFormat>(static_cast<float>(values[i]), scale, qmax);
    }
  }
};

void prefetch_lines(const char* begin, int64_t bytes) {
  for (int64_t line = 0; line < bytes; line += kCacheLineBytes) {
    __builtin_prefetch(begin + line, 0, 2);
  }
}

// A group's values quantized chunk by chunk, each chunk asking for as many values of the source
// the amax pass reads next (next; null: none).
template <typename Src, QuantizedFormat kFormat, typename Run>
__attribute__((always_inline)) inline void quantize_prefetching(const Src* values,
                                                                uint8_t* quantized, int64_t count,
                                                                float scale, float qmax,
                                                                const Src* next) {
  constexpr int64_t kChunk = kPrefetchChunkBytes / sizeof(Src);  // values per chunk
  if (next == nullptr) return Run::quantize(values, quantized, count, scale, qmax);
  for (int64_t i = 0; i < count; i += kChunk) {
    const int64_t chunk = std::min(kChunk, count - i);
    prefetch_lines(reinterpret_cast<const char*>(next + i), chunk * sizeof(Src));
    Run::quantize(values + i, quantized + i, chunk, scale, qmax);
  }
}

// Groups that lie one after another, each a contiguous run of group_size values, their scales
// scale_stride apart: each group's amax, then its values quantized (a group whose scale is 0
// stores zeros), batch by batch (kBatchBytes), each group's loop prefetching the same group of
// the next batch.
template <typename Src, QuantizedFormat kFormat, typename Run = PortableRun<Src, kFormat>>
__attribute__((always_inline)) inline void quantize_consecutive(const Src* values,
                                                                uint8_t* quantized, float* scales,
                                                                int64_t scale_stride,
                                                                int64_t num_groups,
                                                                int64_t group_size, float qmax) {
  const int64_t group_bytes = std::max<int64_t>(group_size * sizeof(Src), 1);
  const int64_t batch = std::clamp<int64_t>(kBatchBytes / group_bytes, 1, kBatchGroups);
  float batch_scales[kBatchGroups];
  for (int64_t begin = 0; begin < num_groups; begin += batch) {
    const int64_t count = std::min(batch, num_groups - begin);
    for (int64_t group = 0; group < count; ++group) {
      const Src* group_values = values + (begin + group) * group_size;
      const float amax = amax_of_bits(Run::amax_bits(group_values, group_size));
      batch_scales[group] = amax / qmax;
    }
    for (int64_t group = 0; group < count; ++group) {
      const int64_t first = (begin + group) * group_size;
      const float scale = batch_scales[group];
      scales[(begin + group) * scale_stride] = scale;
      const Src* ahead =  // the same group of the next batch
          begin + batch + group < num_groups ? values + first + batch * group_size : nullptr;
      if (scale == 0) {
        // An empty group's pointer may be null: fill_n of no value is defined for it.
        std::fill_n(quantized + first, group_size, uint8_t{0});
      } else {
        quantize_prefetching<Src, kFormat, Run>(values + first, quantized + first, group_size,
                                                scale, qmax, ahead);
      }
    }
  }
}

#if defined(__x86_64__)
// The same loops compiled for AVX2 and for AVX-512 as well, for the CPUs that have them: two and
// four times the lanes of x86-64's baseline, and a native unsigned max. Torch's own switch,
// ATEN_CPU_CAPABILITY (default, avx2 or avx512), caps the choice as it caps torch's kernels.
enum class CpuCapability { kDefault, kAvx2, kAvx512 };

CpuCapability cpu_capability() {
  static const CpuCapability capability = [] {
    const char* asked = std::getenv("ATEN_CPU_CAPABILITY");
    const bool capped_default = asked != nullptr && std::strcmp(asked, "default") == 0;
    const bool capped_avx2 = asked != nullptr && std::strcmp(asked, "avx2") == 0;
    if (!capped_default && !capped_avx2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq")) {
      return CpuCapability::kAvx512;
    }
    if (!capped_default && __builtin_cpu_supports("avx2")) return CpuCapability::kAvx2;
    return CpuCapability::kDefault;
  }();
  return capability;
}

template <typename Src, QuantizedFormat kFormat>
__attribute__((target("avx2"))) void quantize_consecutive_avx2(const Src* values,
                                                               uint8_t* quantized, float* scales,
                                                               int64_t scale_stride,
                                                               int64_t num_groups,
                                                               int64_t group_size, float qmax) {
  quantize_consecutive<Src, kFormat>(values, quantized, scales, scale_stride, num_groups,
                                     group_size, qmax);
}

#define MAMBA_STATE_AVX512 target("avx2,avx512f,avx512bw,avx512vl,avx512dq")

// The run written out for AVX-512, with fewer 512-bit operations per value than the compiler's
// vectorization of the portable loop (on Intel cores two ports take them, and they, with the
// division, bounded the loop):
// - a 16-bit source's magnitudes are maxed as 16-bit integers, 32 values an operation (the
//   magnitude bits of bfloat16 and float16 order as their magnitudes do, a NaN's above
//   infinity's, as float32's do);
// - bfloat16 is widened by interleaving it with zero words (one operation per 16 values, in an
//   order within each 128-bit lane that packssdw undoes);
// - the bytes of 64 values are packed from int32 lanes by three packs and one permute, in place
//   of four vpmovdb (two operations each);
// - q = x / scale, the contract's division, is a multiply by 1 / scale and two corrections by
//   FMA, which round as the division does (below), where vdivps would take several cycles of
//   one port per register; int8's conversion rounds to nearest even by its encoding; float8's is
//   float8_bits, lane by lane;
// - the clamp to [-qmax, qmax] is one vrangeps (after a division, a max first maps a NaN to
//   -qmax as the portable clamp does).
//
// Why the FMA quotient is the division's. With y = RN(1 / scale), q0 = RN(x * y) lies within
// two ulps of x / scale; q1 = RN(q0 - RN(q0 * scale - x) * y) within one (the error left is of
// order 2^-46 relative, before q1's rounding). For q1 within one ulp the remainder q1 * scale - x
// is a float32, exact, and RN(q1 - (q1 * scale - x) * y) is RN(x / scale), by Markstein's
// theorem, which holds where the remainders are exact: for scale in [2^-40, 2^40]
// (quotient_by_fma) and |x / scale| >= 2^-40, y and the qs are normal, and the remainder, a
// multiple of 2^-127 at least, is exact even where subnormal.
// Below that the result may differ from the quotient, but is at most about 2^-40 too, and of
// x's sign or a zero: before a correction's rounding, q - r * y is x * y + q * (1 - scale * y)
// plus r's rounding error times y, where |x * y| >= 2^-149 * y and the error is at most
// 2^-150 * y. So it stores the same zero of the pool's dtype: int8 has one, float8 one of each
// sign, which the remainder's form q * scale - x (fmsub) keeps: for x = -0 it is +0, and
// q - (+0) * y is -0. A group whose scale lies outside (a NaN, an infinity, a tiny or huge
// amax) divides. tests/test_quantized.py holds quotients on and beside every rounding boundary,
// and groups at the edges of that range.
template <typename Src>
constexpr bool kInterleavedWidening = std::is_same_v<Src, c10::BFloat16>;

// 32 values as two registers of float32 (exact, as static_cast<float> converts them): values
// 0-15 and 16-31, or for bfloat16, per 128-bit lane, values 0-3 then 4-7 of the lane's 8.
template <typename Src>
__attribute__((always_inline, MAMBA_STATE_AVX512)) inline void load_floats(const Src* values,
                                                                           __m512* first,
                                                                           __m512* second) {
  if constexpr (std::is_same_v<Src, float>) {
    *first = _mm512_loadu_ps(values);
    *second = _mm512_loadu_ps(values + 16);
  } else if constexpr (kInterleavedWidening<Src>) {  // the high half of a float32
    const __m512i bits = _mm512_loadu_si512(values);
    *first = _mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(), bits));
    *second = _mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(), bits));
  } else {
    static_assert(std::is_same_v<Src, c10::Half>);
    *first = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(values)));
    *second = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + 16)));
  }
}

// The 64 bytes of four registers of int32, each lane a byte's value (-128-127 for int8, 0-255
// for float8), the registers of two load_floats in turn, stored in order. Packing to words and
// then bytes (saturating, so exact) interleaves the 128-bit lanes of its sources: a permute of
// dwords (of qwords for bfloat16, whose widening packssdw undoes) puts them back.
template <typename Src, QuantizedFormat kFormat>
__attribute__((always_inline, MAMBA_STATE_AVX512)) inline void store_bytes(
    __m512i first, __m512i second, __m512i third, __m512i fourth, uint8_t* quantized) {
  const __m512i low = _mm512_packs_epi32(first, second);
  const __m512i high = _mm512_packs_epi32(third, fourth);
  const __m512i bytes = kFormat == QuantizedFormat::kInt8 ? _mm512_packs_epi16(low, high)
                                                          : _mm512_packus_epi16(low, high);
  const __m512i order =
      kInterleavedWidening<Src>
          ? _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15)
          : _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  _mm512_storeu_si512(quantized, _mm512_permutexvar_epi32(order, bytes));
}

// The running max of 32 values' magnitude bits: as float32 bits in 16 lanes, or for a 16-bit
// source, as its own bits in 32.
template <typename Src>
__attribute__((always_inline, MAMBA_STATE_AVX512)) inline __m512i max_magnitudes(
    __m512i running, const Src* values) {
  if constexpr (std::is_same_v<Src, float>) {
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
    running = _mm512_max_epu32(running, _mm512_and_si512(_mm512_loadu_si512(values), magnitude));
    return _mm512_max_epu32(running, _mm512_and_si512(_mm512_loadu_si512(values + 16), magnitude));
  } else {
    return _mm512_max_epu16(
        running, _mm512_and_si512(_mm512_loadu_si512(values), _mm512_set1_epi16(0x7fff)));
  }
}

// max_magnitudes's result as one float32 magnitude's bits.
template <typename Src>
__attribute__((always_inline, MAMBA_STATE_AVX512)) inline uint32_t largest_magnitude(
    __m512i running) {
  if constexpr (std::is_same_v<Src, float>) {
    return static_cast<uint32_t>(_mm512_reduce_max_epu32(running));
  } else {
    const __m512i halves = _mm512_max_epu32(_mm512_srli_epi32(running, 16),
                                            _mm512_and_si512(running, _mm512_set1_epi32(0xffff)));
    const auto bits = static_cast<uint16_t>(_mm512_reduce_max_epu32(halves));
    return magnitude_bits(static_cast<float>(Src(bits, Src::from_bits())));
  }
}

// Whether a group's quotients x / scale may be computed by FMA (above).
inline bool quotient_by_fma(float scale) {
  return scale >= 0x1p-40f && scale <= 0x1p40f;
}

// float8_bits of 16 finite values, each in an int32 lane, from their bits and magnitudes' bits.
template <QuantizedFormat kFormat>
__attribute__((always_inline, MAMBA_STATE_AVX512)) inline __m512i float8_bits_of(
    __m512i bits, __m512i magnitude) {
  using Layout = Float8Of<kFormat>;
  const __m512i smallest_normal = _mm512_set1_epi32(Layout::kSmallestNormal);
  const __m512i exponent =
      _mm512_max_epu32(_mm512_and_si512(magnitude, _mm512_set1_epi32(0x7f800000)), smallest_normal);
  const __m512i addend = _mm512_add_epi32(exponent, _mm512_set1_epi32(Layout::kUlpOffset));
  const __m512i ulps =
      _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(magnitude),
                                                         _mm512_castsi512_ps(addend))),
                       addend);
  const __m512i unsigned_bits = _mm512_add_epi32(
      ulps, _mm512_srli_epi32(_mm512_sub_epi32(exponent, smallest_normal), Layout::kShift));
  // unsigned_bits | (the sign's bit >> 24 & 0x80): 0xf8 is a | (b & c) as a truth table.
  return _mm512_ternarylogic_epi32(unsigned_bits, _mm512_srli_epi32(bits, 24),
                                   _mm512_set1_epi32(0x80), 0xf8);
}

// vrangeps's immediates for the clamp to [-qmax, qmax] in one operation: of q and qmax, the one
// of smaller magnitude (bits 1:0 = 2), with q's sign (bits 3:2 = 0), or with none (bits 3:2 = 2).
constexpr int kClampBySign = 0x2;
constexpr int kClampMagnitude = 0xa;

// The pool's bits of 16 values of a group, each in an int32 lane.
template <QuantizedFormat kFormat>
struct Quantizer {
  bool by_fma;  // quotient_by_fma
  __m512 scale, reciprocal, low, high;

  // x / scale, a division's NaN (a NaN group's) as -qmax, where the portable clamp maps it.
  __attribute__((always_inline, MAMBA_STATE_AVX512)) __m512 quotient(__m512 x) const {
    if (!by_fma) return _mm512_max_ps(_mm512_div_ps(x, scale), low);
    __m512 q = _mm512_mul_ps(x, reciprocal);
    for (int correction = 0; correction < 2; ++correction) {
      q = _mm512_fnmadd_ps(_mm512_fmsub_ps(q, scale, x), reciprocal, q);
    }
    return q;
  }

  // The clamp is one vrangeps: for int8 q clamped (quant_max may be no integer), for float8 its
  // magnitude clamped, the sign taken from q's bits. (A NaN, which only a division gives, is
  // -qmax by then, as the portable clamp maps it; a NaN group's values are unspecified.)
  __attribute__((always_inline, MAMBA_STATE_AVX512)) __m512i operator()(__m512 x) const {
    const __m512 q = quotient(x);
    if constexpr (kFormat == QuantizedFormat::kInt8) {
      return _mm512_cvt_roundps_epi32(_mm512_range_ps(q, high, kClampBySign),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else {
      const __m512i bits = _mm512_castps_si512(q);
      const __m512i magnitude = _mm512_castps_si512(_mm512_range_ps(q, high, kClampMagnitude));
      return float8_bits_of<kFormat>(bits, magnitude);
    }
  }
};

template <typename Src, QuantizedFormat kFormat>
struct Avx512Run {
  __attribute__((MAMBA_STATE_AVX512)) static uint32_t amax_bits(const Src* values, int64_t count) {
    __m512i running = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 32 <= count; i += 32) running = max_magnitudes(running, values + i);
    return std::max(largest_magnitude<Src>(running),
                    PortableRun<Src, kFormat>::amax_bits(values + i, count - i));
  }

  __attribute__((MAMBA_STATE_AVX512)) static void quantize(const Src* values, uint8_t* quantized,
                                                           int64_t count, float scale, float qmax) {
    const Quantizer<kFormat> quantizer{quotient_by_fma(scale), _mm512_set1_ps(scale),
                                       _mm512_set1_ps(1 / scale), _mm512_set1_ps(-qmax),
                                       _mm512_set1_ps(qmax)};
    int64_t i = 0;
    for (; i + 64 <= count; i += 64) {
      __m512 x[4];
      load_floats(values + i, &x[0], &x[1]);
      load_floats(values + i + 32, &x[2], &x[3]);
      store_bytes<Src, kFormat>(quantizer(x[0]), quantizer(x[1]), quantizer(x[2]), quantizer(x[3]),
                                quantized + i);
    }
    PortableRun<Src, kFormat>::quantize(values + i, quantized + i, count - i, scale, qmax);
  }
};

template <typename Src, QuantizedFormat kFormat>
__attribute__((MAMBA_STATE_AVX512)) void quantize_consecutive_avx512(
    const Src* values, uint8_t* quantized, float* scales, int64_t scale_stride, int64_t num_groups,
    int64_t group_size, float qmax) {
  quantize_consecutive<Src, kFormat, Avx512Run<Src, kFormat>>(
      values, quantized, scales, scale_stride, num_groups, group_size, qmax);
}
#undef MAMBA_STATE_AVX512
#endif

// quantize_consecutive with the loops of the widest instructions the CPU has.
template <typename Src, QuantizedFormat kFormat>
void quantize_consecutive_groups(const Src* values, uint8_t* quantized, float* scales,
                                 int64_t scale_stride, int64_t num_groups, int64_t group_size,
                                 float qmax) {
#if defined(__x86_64__)
  switch (cpu_capability()) {
    case CpuCapability::kAvx512:
      return quantize_consecutive_avx512<Src, kFormat>(values, quantized, scales, scale_stride,
                                                       num_groups, group_size, qmax);
    case CpuCapability::kAvx2:
      return quantize_consecutive_avx2<Src, kFormat>(values, quantized, scales, scale_stride,
                                                     num_groups, group_size, qmax);
    case CpuCapability::kDefault: break;
  }
#endif
  quantize_consecutive<Src, kFormat>(values, quantized, scales, scale_stride, num_groups,
                                     group_size, qmax);
}

bool is_one_run(const StateLayout& layout) {
  return layout.ndim == 0 ||
         (layout.ndim == 1 && layout.dst_strides[0] == 1 && layout.src_strides[0] == 1);
}

// One group: read whole for its amax, then quantized into the pool, its scale stored.
template <typename Src, QuantizedFormat kFormat>
void quantize_group(const StateLayout& layout, char* dst, const char* src, float* scale,
                    float qmax) {
  if (is_one_run(layout)) {
    quantize_consecutive_groups<Src, kFormat>(reinterpret_cast<const Src*>(src),
                                              reinterpret_cast<uint8_t*>(dst), scale, 0, 1,
                                              layout.numel, qmax);
    return;
  }
  float amax = 0;
  for_each_element(layout, dst, 1, src, sizeof(Src), [&](char*, const char* value) {
    amax = max_magnitude(amax, static_cast<float>(*reinterpret_cast<const Src*>(value)));
  });
  const float group_scale = amax / qmax;
  *scale = group_scale;
  for_each_element(layout, dst, 1, src, sizeof(Src), [&](char* quantized, const char* value) {
    *reinterpret_cast<uint8_t*>(quantized) = quantize_value<kFormat>(
        static_cast<float>(*reinterpret_cast<const Src*>(value)), group_scale, qmax);
  });
}

// The copies of a call: held inline up to 256 entries with track copies.
using ResolvedCopies = InlineVector<ResolvedCopy, 512>;

// Where one group of a kind quantized on commit lies.
struct GroupAt {
  char* dst;
  const char* src;
  float* scale;
};

// Walks the groups of a kind quantized on commit from one position of its piece space on (copy
// by copy, layer by layer, group by group).
class GroupCursor {
 public:
  GroupCursor(const StateCopy& copy, const QuantizedCopy& quantized, const ResolvedCopies& copies,
              int64_t position)
      : copy_(copy), quantized_(quantized), copies_(copies) {
    int64_t copy_layer;
    divide(position, quantized.groups.count, &copy_layer, &group_);
    divide(copy_layer, copy.num_layers, &which_, &layer_);
  }

  // The group the cursor is at.
  GroupAt at() const {
    const ResolvedCopy& target = copies_[which_];
    int64_t dst_offset;
    int64_t src_offset;
    int64_t scale_offset;
    quantized_.group_offsets(group_, &dst_offset, &src_offset, &scale_offset);
    return {copy_.dst_state(layer_, target.slot) + dst_offset * copy_.dst_elem_size,
            copy_.src_state(layer_, target) + src_offset * copy_.src_elem_size,
            quantized_.slot_scales(layer_, target.slot) + scale_offset};
  }

  // The groups of its state from the one the cursor is at on.
  int64_t left_in_state() const { return quantized_.groups.count - group_; }

  // Moves on by `groups`, at most left_in_state().
  void advance(int64_t groups) {
    group_ += groups;
    if (group_ == quantized_.groups.count) {
      group_ = 0;
      if (++layer_ == copy_.num_layers) {
        layer_ = 0;
        ++which_;
      }
    }
  }

 private:
  const StateCopy& copy_;
  const QuantizedCopy& quantized_;
  const ResolvedCopies& copies_;
  int64_t which_;
  int64_t layer_;
  int64_t group_;
};

// Groups [begin, end) of a kind quantized on commit. Where a state's groups lie one after another
// in one run (the common layouts: vLLM's, SGLang's), each state's part in one call; else group by
// group.
void quantize_groups(const StateCopy& copy, const QuantizedCopy& quantized,
                     const ResolvedCopies& copies, int64_t begin, int64_t end) {
  const GroupLayout& groups = quantized.groups;
  const int64_t group_size = copy.layout.numel;
  const bool consecutive =
      is_one_run(copy.layout) &&
      (groups.ndim == 0 || (groups.ndim == 1 && groups.dst_strides[0] == group_size &&
                            groups.src_strides[0] == group_size));
  const int64_t scale_stride = groups.ndim == 1 ? groups.scale_strides[0] : 0;
  GroupCursor cursor(copy, quantized, copies, begin);
  visit_quantization(quantized.source, quantized.format, [&](auto types) {
    using Src = typename decltype(types)::Source;
    constexpr QuantizedFormat kFormat = decltype(types)::format;
    for (int64_t position = begin; position < end;) {
      const GroupAt at = cursor.at();
      const int64_t run = consecutive ? std::min(end - position, cursor.left_in_state()) : 1;
      if (consecutive) {
        quantize_consecutive_groups<Src, kFormat>(reinterpret_cast<const Src*>(at.src),
                                                  reinterpret_cast<uint8_t*>(at.dst), at.scale,
                                                  scale_stride, run, group_size, quantized.qmax);
      } else {
        quantize_group<Src, kFormat>(copy.layout, at.dst, at.src, at.scale, quantized.qmax);
      }
      cursor.advance(run);
      position += run;
    }
  });
}

// One state kind's share of the piece space. A kind's work is its copies x layers states laid end
// to end (copy-major, then layer, then element, or group for a kind quantized on commit); each
// piece is a range of piece_units of it, about kPieceBytes whatever the state's size, so that an
// even split of pieces is an even split of bytes.
struct StatePieces {
  int64_t first_piece;
  int64_t piece_units;
  int64_t total_units;
};

void apply_copies(const CopyPlan& plan, const ResolvedCopies& copies) {
  const int64_t num_copies = static_cast<int64_t>(copies.size());
  InlineVector<StatePieces, 8> pieces;
  int64_t num_pieces = 0;
  for (const StateCopy& copy : plan.states) {
    int64_t unit_bytes = std::max(copy.dst_elem_size, copy.src_elem_size);
    int64_t units_per_state = copy.layout.numel;
    if (copy.quantized >= 0) {  // a unit is a group
      unit_bytes = std::max<int64_t>(1, copy.layout.numel * copy.src_elem_size);
      units_per_state = plan.quantized[copy.quantized].groups.count;
    }
    const int64_t piece_units = std::max<int64_t>(1, kPieceBytes / unit_bytes);
    const int64_t total_units = num_copies * copy.num_layers * units_per_state;
    pieces.push_back({num_pieces, piece_units, total_units});
    num_pieces += (total_units + piece_units - 1) / piece_units;
  }
  torch::stable::parallel_for(0, num_pieces, 1, [&](int64_t first, int64_t last) {
    for (int64_t piece = first; piece < last; ++piece) {
      size_t k = pieces.size() - 1;
      while (piece < pieces[k].first_piece) --k;
      const StateCopy& copy = plan.states[k];
      const int64_t begin = (piece - pieces[k].first_piece) * pieces[k].piece_units;
      const int64_t end = std::min(begin + pieces[k].piece_units, pieces[k].total_units);
      if (copy.quantized >= 0) {
        quantize_groups(copy, plan.quantized[copy.quantized], copies, begin, end);
        continue;
      }
      // Walk (copy, layer) pairs from the piece's first element on, dividing once.
      const int64_t numel = copy.layout.numel;
      int64_t copy_layer;
      int64_t element;
      divide(begin, numel, &copy_layer, &element);
      int64_t which;
      int64_t layer;
      divide(copy_layer, copy.num_layers, &which, &layer);
      visit_element_op(copy.conversion, copy.dst_elem_size, [&](auto element_op) {
        using Element = decltype(element_op);
        for (int64_t position = begin; position < end;) {
          const int64_t count = std::min(numel - element, end - position);
          const ResolvedCopy& target = copies[which];
          copy_state_elements<Element>(copy, copy.dst_state(layer, target.slot),
                                       copy.src_state(layer, target), element, element + count);
          position += count;
          element = 0;
          if (++layer == copy.num_layers) {
            layer = 0;
            ++which;
          }
        }
      });
    }
  });
}

// Resolves every copy, raising for the first bad one (entry by entry, the commit before the
// track copy) before anything is written; then applies the copies.
void run(const CopyPlan& plan) {
  const EntryIndices& indices = plan.indices;
  ResolvedCopies copies;
  copies.reserve(static_cast<size_t>(indices.num_tasks()));
  for (int64_t n = 0; n < indices.num_entries; ++n) {
    for (int set = 0; set < indices.num_sets; ++set) {
      const ResolvedEntry entry = resolve_entry(indices, set, n);
      if (entry.status != 0) {
        throw std::out_of_range(describe_bad_entry(plan.op, indices, set, n, entry));
      }
      if (entry.copies()) copies.push_back(entry.copy);
    }
  }
  if (plan.entry_status != nullptr) {
    for (int64_t n = 0; n < indices.num_entries; ++n) {
      plan.entry_status[n * plan.entry_status_stride] = 0;
    }
  }
  if (!copies.empty()) apply_copies(plan, copies);
}

void run_update(const UpdateCall& call) {
  run(plan_update(call));
}

void run_copy_slots(const CopySlotsCall& call) {
  run(plan_copy_slots(call));
}

const bool registered = mamba_state_operators().implement(
    "CPU",
    {{"update", TORCH_BOX(&update_entry<run_update>)},
     {"copy_slots", TORCH_BOX(&copy_slots_entry<run_copy_slots>)}},
    __FILE__, __LINE__);

}  // namespace

const char* cpu_loops() {
#if defined(__x86_64__)
  switch (cpu_capability()) {
    case CpuCapability::kAvx512: return "avx512";
    case CpuCapability::kAvx2: return "avx2";
    case CpuCapability::kDefault: break;
  }
#endif
  return "default";
}

}  // namespace mamba_state
