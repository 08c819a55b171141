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
// A group of at most this many source bytes has its amax read in the loop that quantizes the
// group before it; a larger one is read in a pass of its own. Measured: read in one loop, the
// SGLang layout's 16 KiB groups lost, vLLM's 256-byte ones gained (bench/results/README.md).
constexpr int64_t kPipelinedGroupBytes = 4096;
// A larger group is quantized in chunks of this many source bytes, each asking for the same
// chunk of the next group, which its amax pass reads next.
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
// max, which vectorizes), and the run quantized with its group's nonzero scale while the next
// group's amax is read in the same loop (next, of as many values; null: none, 0), so that one
// group's arithmetic overlaps the next one's loads. The portable loops, which the compiler
// vectorizes.
template <typename Src, QuantizedFormat kFormat>
struct PortableRun {
  __attribute__((always_inline)) static uint32_t amax_bits(const Src* values, int64_t count) {
    uint32_t bits = 0;
    for (int64_t i = 0; i < count; ++i) {
      bits = std::max(bits, magnitude_bits(static_cast<float>(values[i])));
    }
    return bits;
  }

  __attribute__((always_inline)) static uint32_t quantize(const Src* values, uint8_t* quantized,
                                                          int64_t count, float scale, float qmax,
                                                          const Src* next) {
    if (next == nullptr) {
      for (int64_t i = 0; i < count; ++i) {
        quantized[i] = quantize_scaled<kFormat>(static_cast<float>(values[i]), scale, qmax);
      }
      return 0;
    }
    uint32_t next_bits = 0;
    for (int64_t i = 0; i < count; ++i) {
      next_bits = std::max(next_bits, magnitude_bits(static_cast<float>(next[i])));
      quantized[i] = quantize_scaled<kFormat>(static_cast<float>(values[i]), scale, qmax);
    }
    return next_bits;
  }
};

void prefetch_lines(const char* begin, int64_t bytes) {
  for (int64_t line = 0; line < bytes; line += kCacheLineBytes) {
    __builtin_prefetch(begin + line, 0, 2);
  }
}

// A large group's values quantized chunk by chunk, each chunk asking for the same chunk of the
// next group's source (next; null: none).
template <typename Src, QuantizedFormat kFormat, typename Run>
__attribute__((always_inline)) inline void quantize_prefetching(const Src* values,
                                                                uint8_t* quantized, int64_t count,
                                                                float scale, float qmax,
                                                                const Src* next) {
  constexpr int64_t kChunk = kPrefetchChunkBytes / sizeof(Src);  // values per chunk
  int64_t i = 0;
  if (next != nullptr) {
    for (; i + kChunk <= count; i += kChunk) {
      prefetch_lines(reinterpret_cast<const char*>(next + i), kPrefetchChunkBytes);
      Run::quantize(values + i, quantized + i, kChunk, scale, qmax, nullptr);
    }
  }
  Run::quantize(values + i, quantized + i, count - i, scale, qmax, nullptr);
}

// Groups that lie one after another, each a contiguous run of group_size values, their scales
// scale_stride apart: each group's amax, then its values quantized (a group whose scale is 0
// stores zeros). A small group's amax is read in the loop that quantizes the group before it; a
// large one's in a pass of its own, which the loop before it prefetches for.
template <typename Src, QuantizedFormat kFormat, typename Run = PortableRun<Src, kFormat>>
__attribute__((always_inline)) inline void quantize_consecutive(const Src* values,
                                                                uint8_t* quantized, float* scales,
                                                                int64_t scale_stride,
                                                                int64_t num_groups,
                                                                int64_t group_size, float qmax) {
  if (num_groups <= 0) return;
  const bool pipelined = group_size * static_cast<int64_t>(sizeof(Src)) <= kPipelinedGroupBytes;
  uint32_t amax_bits = Run::amax_bits(values, group_size);
  for (int64_t group = 0; group < num_groups; ++group) {
    const int64_t first = group * group_size;
    const Src* next = group + 1 < num_groups ? values + first + group_size : nullptr;
    const float scale = amax_of_bits(amax_bits) / qmax;
    scales[group * scale_stride] = scale;
    const bool fused = pipelined && scale != 0;
    amax_bits = 0;
    if (scale == 0) {
      std::memset(quantized + first, 0, static_cast<size_t>(group_size));
    } else if (fused) {
      amax_bits = Run::quantize(values + first, quantized + first, group_size, scale, qmax, next);
    } else {
      quantize_prefetching<Src, kFormat, Run>(values + first, quantized + first, group_size, scale,
                                              qmax, next);
    }
    if (next != nullptr && !fused) amax_bits = Run::amax_bits(next, group_size);
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

// 16 values as float32: exact, as static_cast<float> converts them.
template <typename Src>
__attribute__((always_inline, MAMBA_STATE_AVX512)) inline __m512 load_floats(const Src* values) {
  if constexpr (std::is_same_v<Src, float>) {
    return _mm512_loadu_ps(values);
  } else if constexpr (std::is_same_v<Src, c10::BFloat16>) {  // the high half of a float32
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(values));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  } else {
    static_assert(std::is_same_v<Src, c10::Half>);
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(values)));
  }
}

// The int8 run written out for AVX-512: the compiler's vectorization of the portable loop rounds
// by adding and taking away 1.5 x 2^23 and narrows through words (two permutes, two narrowings
// and an insert per 64 values); a conversion that rounds to nearest even by its encoding, then
// vpmovdb, does it in two instructions per 16. The same values: the clamp's max and min map a
// NaN to -qmax as the portable clamp does.
template <typename Src, QuantizedFormat kFormat>
struct Avx512Run {
  __attribute__((always_inline)) static uint32_t amax_bits(const Src* values, int64_t count) {
    return PortableRun<Src, kFormat>::amax_bits(values, count);
  }

  __attribute__((MAMBA_STATE_AVX512)) static uint32_t quantize(const Src* values,
                                                               uint8_t* quantized, int64_t count,
                                                               float scale, float qmax,
                                                               const Src* next) {
    if constexpr (kFormat != QuantizedFormat::kInt8) {
      return PortableRun<Src, kFormat>::quantize(values, quantized, count, scale, qmax, next);
    } else {
      const __m512 divisor = _mm512_set1_ps(scale);
      const __m512 low = _mm512_set1_ps(-qmax);
      const __m512 high = _mm512_set1_ps(qmax);
      const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
      __m512i next_bits = _mm512_setzero_si512();
      int64_t i = 0;
      for (; i + 16 <= count; i += 16) {
        if (next != nullptr) {
          const __m512i bits = _mm512_castps_si512(load_floats(next + i));
          next_bits = _mm512_max_epu32(next_bits, _mm512_and_si512(bits, magnitude));
        }
        const __m512 q = _mm512_div_ps(load_floats(values + i), divisor);
        const __m512 clamped = _mm512_min_ps(_mm512_max_ps(q, low), high);
        const __m512i rounded =
            _mm512_cvt_roundps_epi32(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(quantized + i), _mm512_cvtepi32_epi8(rounded));
      }
      const uint32_t tail_bits = PortableRun<Src, kFormat>::quantize(
          values + i, quantized + i, count - i, scale, qmax, next == nullptr ? nullptr : next + i);
      return std::max(static_cast<uint32_t>(_mm512_reduce_max_epu32(next_bits)), tail_bits);
    }
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
