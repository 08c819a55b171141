// The body of the CUDA kernel, as __host__ __device__ code: update_cuda.cu runs run_block once per
// (block, thread) of the grid, and the tests run the same function over the same grid on the CPU
// (_C._run_cuda_grid_on_cpu), so that the index arithmetic is tested on machines without a GPU.
//
// Work is cut into tiles: kUnitsPerTile units of one (state kind, entry, layer), where a unit is a
// vector of 16 bytes (on the wider side) when the innermost run is contiguous and aligned on both
// sides, else one element.
// Each thread loads its kUnitsPerThread units before it stores any of them.
#pragma once

#include "../copy_plan.h"

#if defined(__CUDACC__)
#define MAMBA_STATE_UNROLL _Pragma("unroll")
#else
#define MAMBA_STATE_UNROLL
#endif

namespace mamba_state {

constexpr int kThreadsPerBlock = 256;
constexpr int kUnitsPerThread = 4;
constexpr int64_t kUnitsPerTile = kThreadsPerBlock * kUnitsPerThread;
constexpr int kVectorBytes = 16;
constexpr int kMaxStatesPerLaunch = 8;

struct TiledStateCopy {
  StateCopy copy;
  bool vectorized;
  int32_t unit_elements;  // elements per unit: kVectorBytes / the wider element size, or 1
  int64_t units_per_entry;
  int64_t tiles_per_entry;
  int64_t first_block;
};

// The whole launch, filled once on the host and passed by value (no copy to the device).
struct KernelParams {
  EntryIndices indices;
  int32_t* entry_status;
  int64_t entry_status_stride;
  int64_t status_blocks;  // blocks [0, status_blocks) write entry_status, a thread per entry
  int32_t num_states;
  TiledStateCopy states[kMaxStatesPerLaunch];
  int64_t num_blocks;
};
static_assert(sizeof(KernelParams) <= 4096, "CUDA kernel arguments are limited to 4 KiB");

struct alignas(16) Vector16 {
  uint32_t words[4];
};

// Same dtype, vectorized: 16 bytes at a time whatever the dtype.
struct CopyVector {
  using Value = Vector16;
  MAMBA_STATE_HOST_DEVICE static Value load(const char* src) {
    return *reinterpret_cast<const Value*>(src);
  }
  MAMBA_STATE_HOST_DEVICE static void store(char* dst, const Value& value) {
    *reinterpret_cast<Value*>(dst) = value;
  }
};

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

// 16 bytes on the wider side: 4 elements between float32 and a 16-bit type (16-byte loads or
// stores on the float32 side, 8-byte ones on the other), 8 between float16 and bfloat16. Between
// load and store a thread holds the narrower side.
template <typename Src, typename Dst>
struct ConvertVector {
  static constexpr int kElements =
      kVectorBytes / (sizeof(Src) > sizeof(Dst) ? sizeof(Src) : sizeof(Dst));
  static constexpr bool kConvertOnLoad = sizeof(Dst) < sizeof(Src);
  template <typename T>
  struct alignas(sizeof(T) * kElements) Vector {
    T values[kElements];
  };
  using Value = Vector<std::conditional_t<kConvertOnLoad, Dst, Src>>;

  template <typename From, typename To>
  MAMBA_STATE_HOST_DEVICE static Vector<To> convert(const Vector<From>& in) {
    Vector<To> out;
    MAMBA_STATE_UNROLL
    for (int i = 0; i < kElements; ++i) out.values[i] = convert_value<From, To>(in.values[i]);
    return out;
  }
  MAMBA_STATE_HOST_DEVICE static Value load(const char* src) {
    const Vector<Src> in = *reinterpret_cast<const Vector<Src>*>(src);
    if constexpr (kConvertOnLoad) {
      return convert<Src, Dst>(in);
    } else {
      return in;
    }
  }
  MAMBA_STATE_HOST_DEVICE static void store(char* dst, const Value& value) {
    if constexpr (kConvertOnLoad) {
      *reinterpret_cast<Vector<Dst>*>(dst) = value;
    } else {
      *reinterpret_cast<Vector<Dst>*>(dst) = convert<Src, Dst>(value);
    }
  }
};

// A single-run entry (ndim <= 1, the contiguous case): offsets are one multiply, and each thread
// loads all of its units before it stores any.
template <typename Op>
MAMBA_STATE_HOST_DEVICE void copy_tile_one_dim(const TiledStateCopy& state, char* dst,
                                               const char* src, int64_t tile, int thread) {
  const EntryLayout& entry = state.copy.entry;
  typename Op::Value values[kUnitsPerThread];
  const int64_t first_unit = tile * kUnitsPerTile + thread;
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit < state.units_per_entry) {
      const int64_t element = unit * state.unit_elements;
      values[j] = Op::load(src + element * entry.src_strides[0] * state.copy.src_elem_size);
    }
  }
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit < state.units_per_entry) {
      const int64_t element = unit * state.unit_elements;
      Op::store(dst + element * entry.dst_strides[0] * state.copy.dst_elem_size, values[j]);
    }
  }
}

// Any other entry: each unit's element index is decomposed over the entry dims. One unit at a
// time, so that this rarer path does not raise the register count (and so lower the occupancy)
// of the whole kernel.
template <typename Op>
MAMBA_STATE_HOST_DEVICE void copy_tile_strided(const TiledStateCopy& state, char* dst,
                                               const char* src, int64_t tile, int thread) {
  const int64_t first_unit = tile * kUnitsPerTile + thread;
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit >= state.units_per_entry) return;
    int64_t dst_offset;
    int64_t src_offset;
    entry_offsets(state.copy.entry, unit * state.unit_elements, &dst_offset, &src_offset);
    Op::store(dst + dst_offset * state.copy.dst_elem_size,
              Op::load(src + src_offset * state.copy.src_elem_size));
  }
}

template <typename Op>
MAMBA_STATE_HOST_DEVICE void copy_tile(const TiledStateCopy& state, char* dst, const char* src,
                                       int64_t tile, int thread) {
  if (state.copy.entry.ndim <= 1) {
    copy_tile_one_dim<Op>(state, dst, src, tile, thread);
  } else {
    copy_tile_strided<Op>(state, dst, src, tile, thread);
  }
}

template <typename Src, typename Dst>
MAMBA_STATE_HOST_DEVICE void convert_tile(const TiledStateCopy& state, char* dst, const char* src,
                                          int64_t tile, int thread) {
  if (state.vectorized) {
    copy_tile<ConvertVector<Src, Dst>>(state, dst, src, tile, thread);
  } else {
    copy_tile<ConvertElement<Src, Dst>>(state, dst, src, tile, thread);
  }
}

MAMBA_STATE_HOST_DEVICE inline void copy_bytes_tile(const TiledStateCopy& state, char* dst,
                                                     const char* src, int64_t tile, int thread) {
  if (state.vectorized) return copy_tile<CopyVector>(state, dst, src, tile, thread);
  switch (state.copy.dst_elem_size) {  // the host admits only these sizes
    case 1: return copy_tile<CopyElement<1>>(state, dst, src, tile, thread);
    case 2: return copy_tile<CopyElement<2>>(state, dst, src, tile, thread);
    case 4: return copy_tile<CopyElement<4>>(state, dst, src, tile, thread);
    case 8: return copy_tile<CopyElement<8>>(state, dst, src, tile, thread);
    default: return copy_tile<CopyElement<16>>(state, dst, src, tile, thread);
  }
}

MAMBA_STATE_HOST_DEVICE inline void run_block(const KernelParams& params, int64_t block,
                                              int thread) {
  if (block < params.status_blocks) {
    const int64_t n = block * kThreadsPerBlock + thread;
    if (n < params.indices.num_entries) {
      params.entry_status[n * params.entry_status_stride] = resolve_entry(params.indices, n).status;
    }
    return;
  }
  int k = params.num_states - 1;
  while (block < params.states[k].first_block) --k;
  const TiledStateCopy& state = params.states[k];
  const int64_t local = block - state.first_block;
  const int64_t entry_layer = local / state.tiles_per_entry;
  const int64_t tile = local - entry_layer * state.tiles_per_entry;
  const int64_t n = entry_layer / state.copy.num_layers;
  const int64_t layer = entry_layer - n * state.copy.num_layers;

  const ResolvedEntry entry = resolve_entry(params.indices, n);
  if (!entry.copies()) return;  // skipped, or bad: a bad entry is applied nowhere
  char* dst = state.copy.dst_entry(layer, entry.slot);
  const char* src = state.copy.src_entry(layer, entry.row, entry.step);
  visit_conversion(state.copy.conversion, [&](auto types) {
    using Types = decltype(types);
    if constexpr (std::is_same_v<Types, CopyBytesTag>) {
      copy_bytes_tile(state, dst, src, tile, thread);
    } else {
      convert_tile<typename Types::Source, typename Types::Dest>(state, dst, src, tile, thread);
    }
  });
}

}  // namespace mamba_state
