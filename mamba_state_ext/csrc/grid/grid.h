// The persistent grid of the CUDA kernel, as __host__ __device__ code: cuda/copy_cuda.cu runs it
// on the GPU, and the tests run the same functions over the same grid on the CPU
// (tests/grid/grid_on_cpu.cpp), so that its index arithmetic is tested on machines without a
// GPU. docs/kernel.md describes the design and how it was measured.
//
// A task is one (index set, entry) pair. The grid is persistent (about as many blocks as fit on
// the GPU at once) and each block serves one state kind, the kinds sharing the blocks in
// proportion to their tiles' expected time. Each block first resolves every task of the launch
// (up to kMaxTasks) into shared memory, keeping the copies (the tasks that copy); then it applies
// its kind's tiles of them: tiles b, b + blocks, ... of the kind's blocks. So a skipped entry (the
// padding of a CUDA-graph batch) costs one index read per block, not a block per tile; a tile
// reads no index from global memory; and each block runs one copy path, chosen once, whose tile
// loop is compiled on its own (a loop around the choice of path, or two choices in one block,
// makes the compiler keep every path's registers at once, and spill).
//
// A tile is kUnitsPerTile units of one (copy, layer) of a kind, where a unit is 16 bytes (on the
// wider side of a conversion) when the layout allows, else one element. Each thread loads its
// kUnitsPerThread units before it stores any of them.
#pragma once

#include "../copy_plan.h"
#include "../macros.h"

// Variants of the kernel that the GPU check measures against this one (scripts/kernel_variants.txt
// builds each with -D); the defaults are the kernel as it is.
#ifndef MAMBA_STATE_UNITS_PER_THREAD  // 16-byte loads each thread has in flight
#define MAMBA_STATE_UNITS_PER_THREAD 4
#endif
#ifndef MAMBA_STATE_MIN_BLOCKS_PER_SM  // blocks the register budget keeps resident per SM
#define MAMBA_STATE_MIN_BLOCKS_PER_SM 2
#endif
#ifndef MAMBA_STATE_WINDOW_TILE_WEIGHT  // a conv-window tile's time, in tiles of 16-byte copies
#define MAMBA_STATE_WINDOW_TILE_WEIGHT 1.3
#endif
#ifndef MAMBA_STATE_BULK_COPY  // 1: same-dtype 16-byte tiles through Hopper's bulk-copy engine
#define MAMBA_STATE_BULK_COPY 0
#endif

namespace mamba_state {

constexpr int kThreadsPerBlock = 256;
// Blocks the register budget keeps resident per SM: 2 x 256 threads x 4 units of 16 bytes is
// 32 KiB of loads in flight per SM, more than a Hopper SM needs to reach HBM's bandwidth (its
// bandwidth x latency / SMs; docs/kernel.md). 4 blocks would leave 64 registers a thread: each
// copy path fits in that alone, but not all of them in one kernel.
constexpr int kMinBlocksPerMultiprocessor = MAMBA_STATE_MIN_BLOCKS_PER_SM;
constexpr int kUnitsPerThread = MAMBA_STATE_UNITS_PER_THREAD;
constexpr int64_t kUnitsPerTile = kThreadsPerBlock * kUnitsPerThread;
constexpr int kVectorBytes = 16;
constexpr int kWarpSize = 32;
constexpr int kWarpsPerBlock = kThreadsPerBlock / kWarpSize;
constexpr int kMaxStatesPerLaunch = 8;
// Kinds quantized on commit a launch takes (KernelParams must fit CUDA's 4 KiB of arguments).
constexpr int kMaxQuantizedPerLaunch = 2;
// kQuantize combines the units of a tile through one warp: one value per (unit, warp) pair.
constexpr bool kQuantizeTilesFit = kUnitsPerThread * kWarpsPerBlock == kWarpSize;
// kQuantizeGroups: a tile is a group per warp.
constexpr int64_t kGroupsPerTile = kWarpsPerBlock;
constexpr int kTasksPerThread = 2;
// Tasks one launch resolves: N entries with track copies, or 2N without, up to N = 256 (a larger
// call takes one launch per kMaxTasks tasks).
constexpr int kMaxTasks = kThreadsPerBlock * kTasksPerThread;

// How a kind's tiles are copied, by its collapsed state layout.
enum class TilePath : int32_t {
  kOneDim,   // one run (ndim <= 1, the contiguous case): 16-byte units when aligned
  kRows,     // a contiguous destination read from rows of a 2-D source (a conv window):
             // 16-byte stores, element loads
  kStrided,  // anything else: one element at a time, offsets decomposed per element
  // Quantized on commit (a QuantizedCopy beside the kind):
  kQuantize,        // groups one after another in a contiguous state, a power-of-two number of
                    // 16-byte source units each that divides a tile: a tile held in registers
  kQuantizeGroups,  // anything else: a warp per group, read twice, one element at a time
};

struct TiledStateCopy {
  StateCopy copy;
  TilePath path;
  int32_t unit_elements;    // elements per unit
  int64_t units_per_state;  // kQuantizeGroups: groups per state
  int64_t tiles_per_state;  // tiles of one (copy, layer)
  int32_t group_units;      // kQuantize: units per group
};

// The whole launch, filled once on the host and passed by value (no copy to the device).
struct KernelParams {
  EntryIndices indices;
  int64_t first_task;  // the launch's tasks: [first_task, first_task + num_tasks)
  int32_t num_tasks;
  int32_t* entry_status;  // block 0 writes it; nullptr: not asked for, or not this launch's job
  int64_t entry_status_stride;
  int32_t num_states;
  TiledStateCopy states[kMaxStatesPerLaunch];
  int32_t first_block[kMaxStatesPerLaunch + 1];     // kind k's blocks: [first_block[k], [k + 1])
  QuantizedCopy quantized[kMaxQuantizedPerLaunch];  // a state's copy.quantized indexes this
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

// kOneDim: offsets are one multiply, and each thread loads all of its units before it stores any.
template <typename Op>
MAMBA_STATE_HOST_DEVICE void copy_tile_one_dim(const TiledStateCopy& state, char* dst,
                                               const char* src, int64_t tile, int thread) {
  const StateLayout& layout = state.copy.layout;
  const int64_t dst_step = layout.dst_strides[0] * state.unit_elements * state.copy.dst_elem_size;
  const int64_t src_step = layout.src_strides[0] * state.unit_elements * state.copy.src_elem_size;
  typename Op::Value values[kUnitsPerThread];
  const int64_t first_unit = tile * kUnitsPerTile + thread;
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit < state.units_per_state) values[j] = Op::load(src + unit * src_step);
  }
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit < state.units_per_state) Op::store(dst + unit * dst_step, values[j]);
  }
}

// kRows: each unit is kVectorBytes of the contiguous destination, gathered element by element
// from the source rows (row and column advance by counting, with one division per unit), and
// stored at once.
template <typename Element>
MAMBA_STATE_HOST_DEVICE void copy_tile_rows(const TiledStateCopy& state, char* dst, const char* src,
                                            int64_t tile, int thread) {
  using Dst = typename Element::Value;
  constexpr int kElements = kVectorBytes / sizeof(Dst);
  struct alignas(kVectorBytes) Unit {
    Dst values[kElements];
  };
  const StateLayout& layout = state.copy.layout;
  const int64_t columns = layout.sizes[1];
  const int64_t row_bytes = layout.src_strides[0] * state.copy.src_elem_size;
  const int64_t column_bytes = layout.src_strides[1] * state.copy.src_elem_size;
  Unit units[kUnitsPerThread];
  const int64_t first_unit = tile * kUnitsPerTile + thread;
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit < state.units_per_state) {
      int64_t row;
      int64_t column;
      divide(unit * kElements, columns, &row, &column);
      const char* row_start = src + row * row_bytes;
      MAMBA_STATE_UNROLL
      for (int i = 0; i < kElements; ++i) {
        units[j].values[i] = Element::load(row_start + column * column_bytes);
        if (++column == columns) {
          column = 0;
          row_start += row_bytes;
        }
      }
    }
  }
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit < state.units_per_state) {
      *reinterpret_cast<Unit*>(dst + unit * kVectorBytes) = units[j];
    }
  }
}

// kStrided: each element's index is decomposed over the state dims. One element at a time, so
// that this rare path does not raise the register count (and so lower the occupancy) of the
// whole kernel.
template <typename Op>
MAMBA_STATE_HOST_DEVICE void copy_tile_strided(const TiledStateCopy& state, char* dst,
                                               const char* src, int64_t tile, int thread) {
  const int64_t first_unit = tile * kUnitsPerTile + thread;
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit >= state.units_per_state) return;
    int64_t dst_offset;
    int64_t src_offset;
    state_offsets(state.copy.layout, unit, &dst_offset, &src_offset);
    Op::store(dst + dst_offset * state.copy.dst_elem_size,
              Op::load(src + src_offset * state.copy.src_elem_size));
  }
}

// Block 0's extra job: every entry's status, its threads striding over the entries.
MAMBA_STATE_HOST_DEVICE void write_entry_status(const KernelParams& params, int thread) {
  for (int64_t n = thread; n < params.indices.num_entries; n += kThreadsPerBlock) {
    params.entry_status[n * params.entry_status_stride] = entry_status(params.indices, n);
  }
}

// Resolves the launch's task `task` (threads share them out kTasksPerThread each, in order);
// returns whether it copies, and if so where, in *copy.
MAMBA_STATE_HOST_DEVICE bool resolve_task(const KernelParams& params, int task,
                                          ResolvedCopy* copy) {
  if (task >= params.num_tasks) return false;
  int64_t set;
  int64_t n;
  divide(params.first_task + task, params.indices.num_entries, &set, &n);
  return entry_copies(params.indices, static_cast<int>(set), n, copy);
}

// The kind that block serves.
MAMBA_STATE_HOST_DEVICE int kind_of_block(const KernelParams& params, int64_t block) {
  int k = params.num_states - 1;
  while (block < params.first_block[k]) --k;
  return k;
}

// Where tile t of a kind's tiles lies: tiles numbered copy by copy, layer by layer.
struct TilePlace {
  ResolvedCopy target;
  int64_t layer;
  int64_t tile;  // within the (copy, layer)'s state
};

MAMBA_STATE_HOST_DEVICE TilePlace place_of_tile(const TiledStateCopy& state,
                                                const ResolvedCopy* copies, int64_t t) {
  TilePlace place;
  int64_t copy_layer;
  divide(t, state.tiles_per_state, &copy_layer, &place.tile);
  int64_t which;
  divide(copy_layer, state.copy.num_layers, &which, &place.layer);
  place.target = copies[which];
  return place;
}

MAMBA_STATE_HOST_DEVICE int64_t num_tiles(const TiledStateCopy& state, int64_t num_copies) {
  return num_copies * state.copy.num_layers * state.tiles_per_state;
}

// A thread's part of applying kind k's tiles of the launch's num_copies copies, of which this
// block (the kind's block-th) takes every num_blocks-th.
template <typename CopyTile>
MAMBA_STATE_HOST_DEVICE void copy_kind_tiles(const TiledStateCopy& state, CopyTile copy_tile,
                                             const ResolvedCopy* copies, int64_t num_copies,
                                             int64_t block, int64_t num_blocks, int thread) {
  // One tile at a time: each already has kUnitsPerThread loads in flight per thread.
  MAMBA_STATE_NO_UNROLL
  for (int64_t t = block; t < num_tiles(state, num_copies); t += num_blocks) {
    const TilePlace place = place_of_tile(state, copies, t);
    copy_tile(state, state.copy.dst_state(place.layer, place.target.slot),
              state.copy.src_state(place.layer, place.target), place.tile, thread);
  }
}

// Kinds quantized on commit. A group is read whole before any of it is written: in kQuantize a
// tile's units stay in registers while each unit's max magnitude is combined over its group's
// threads (shuffles within a warp, then one warp over the (unit, warp) pairs, through shared
// memory, for a group wider than a warp); in kQuantizeGroups a warp reads its group twice, for
// the amax and then the values. The steps each thread takes are written here once; the CUDA
// kernel combines the maxima with shuffles (cuda/copy_cuda.cu), the tests' CPU run of the grid
// by the same pattern over arrays (tests/grid/grid_on_cpu.cpp).

// 16 bytes of a source, as values.
template <typename Src>
struct alignas(kVectorBytes) SourceUnit {
  static constexpr int kElements = kVectorBytes / sizeof(Src);
  Src values[kElements];
};

// kQuantize, first: a thread's units of the tile, loaded all before any is read, and each one's
// max magnitude (0 past the state's end: those units belong to no group of it).
template <typename Src>
MAMBA_STATE_HOST_DEVICE void load_quantize_units(const TiledStateCopy& state, const char* src,
                                                 int64_t tile, int thread, SourceUnit<Src>* units,
                                                 float* maxima) {
  const int64_t first_unit = tile * kUnitsPerTile + thread;
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit < state.units_per_state) {
      units[j] = *reinterpret_cast<const SourceUnit<Src>*>(src + unit * kVectorBytes);
    }
  }
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    maxima[j] = 0;
    if (first_unit + j * kThreadsPerBlock < state.units_per_state) {
      MAMBA_STATE_UNROLL
      for (int i = 0; i < SourceUnit<Src>::kElements; ++i) {
        maxima[j] = max_magnitude(maxima[j], static_cast<float>(units[j].values[i]));
      }
    }
  }
}

// kQuantize, last: each unit quantized with its group's amax (group_maxima[j] for units[j]) and
// stored; the thread holding a group's first unit stores its scale.
template <typename Src, QuantizedFormat kFormat>
MAMBA_STATE_HOST_DEVICE void store_quantize_units(const TiledStateCopy& state,
                                                  const QuantizedCopy& quantized, char* dst,
                                                  float* slot_scales, int64_t tile, int thread,
                                                  const SourceUnit<Src>* units,
                                                  const float* group_maxima) {
  constexpr int kElements = SourceUnit<Src>::kElements;
  using Packed = ElementBytes<kElements>;  // the unit's quantized bytes, in one store
  const int64_t first_unit = tile * kUnitsPerTile + thread;
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit >= state.units_per_state) continue;
    const float scale = group_maxima[j] / quantized.qmax;
    Packed packed = 0;
    MAMBA_STATE_UNROLL
    for (int i = 0; i < kElements; ++i) {
      const Packed bits =
          quantize_value<kFormat>(static_cast<float>(units[j].values[i]), scale, quantized.qmax);
      packed |= bits << (8 * i);
    }
    *reinterpret_cast<Packed*>(dst + unit * kElements) = packed;
    if (unit % state.group_units == 0) {
      int64_t dst_offset;
      int64_t src_offset;
      int64_t scale_offset;
      quantized.group_offsets(unit / state.group_units, &dst_offset, &src_offset, &scale_offset);
      slot_scales[scale_offset] = scale;
    }
  }
}

// kQuantizeGroups: a lane's part of its warp's group (elements lane, lane + 32, ...): its max
// magnitude, then its quantized values.
template <typename Src>
MAMBA_STATE_HOST_DEVICE float lane_group_amax(const StateLayout& layout, const char* src,
                                              int lane) {
  float amax = 0;
  for (int64_t element = lane; element < layout.numel; element += kWarpSize) {
    int64_t dst_offset;
    int64_t src_offset;
    state_offsets(layout, element, &dst_offset, &src_offset);
    amax = max_magnitude(
        amax, static_cast<float>(*reinterpret_cast<const Src*>(src + src_offset * sizeof(Src))));
  }
  return amax;
}

template <typename Src, QuantizedFormat kFormat>
MAMBA_STATE_HOST_DEVICE void lane_group_store(const StateLayout& layout, char* dst, const char* src,
                                              int lane, float scale, float qmax) {
  for (int64_t element = lane; element < layout.numel; element += kWarpSize) {
    int64_t dst_offset;
    int64_t src_offset;
    state_offsets(layout, element, &dst_offset, &src_offset);
    const float value =
        static_cast<float>(*reinterpret_cast<const Src*>(src + src_offset * sizeof(Src)));
    *reinterpret_cast<uint8_t*>(dst + dst_offset) = quantize_value<kFormat>(value, scale, qmax);
  }
}

// kQuantizeGroups: where warp `warp`'s group of tile t lies, if the tile has that group.
struct GroupPlace {
  char* dst;
  const char* src;
  float* scale;
};

MAMBA_STATE_HOST_DEVICE bool place_of_group(const TiledStateCopy& state,
                                            const QuantizedCopy& quantized,
                                            const ResolvedCopy* copies, int64_t t, int warp,
                                            GroupPlace* place) {
  const TilePlace tile = place_of_tile(state, copies, t);
  const int64_t group = tile.tile * kGroupsPerTile + warp;
  if (group >= quantized.groups.count) return false;
  int64_t dst_offset;
  int64_t src_offset;
  int64_t scale_offset;
  quantized.group_offsets(group, &dst_offset, &src_offset, &scale_offset);
  place->dst = state.copy.dst_state(tile.layer, tile.target.slot) + dst_offset;
  place->src =
      state.copy.src_state(tile.layer, tile.target) + src_offset * state.copy.src_elem_size;
  place->scale = quantized.slot_scales(tile.layer, tile.target.slot) + scale_offset;
  return true;
}

#if defined(__CUDACC__)
// The CUDA kernel's quantize paths (cuda/copy_cuda.cu).
template <typename Src, QuantizedFormat kFormat>
__device__ __forceinline__ void quantize_kind_tiles(const TiledStateCopy& state,
                                                    const QuantizedCopy& quantized,
                                                    const ResolvedCopy* copies, int64_t num_copies,
                                                    int64_t block, int64_t num_blocks, int thread);
template <typename Src, QuantizedFormat kFormat>
__device__ __forceinline__ void quantize_kind_groups(const TiledStateCopy& state,
                                                     const QuantizedCopy& quantized,
                                                     const ResolvedCopy* copies, int64_t num_copies,
                                                     int64_t block, int64_t num_blocks, int thread);
#endif

// One copy path as a type of its own, so that each instantiation of copy_kind_tiles is separate
// (a function pointer would make them one, with an indirect call).
template <auto kCopyTile>
struct TileCopy {
  MAMBA_STATE_HOST_DEVICE void operator()(const TiledStateCopy& state, char* dst, const char* src,
                                          int64_t tile, int thread) const {
    kCopyTile(state, dst, src, tile, thread);
  }
};

#if MAMBA_STATE_BULK_COPY && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// The kind's 16-byte-aligned raw tiles through the bulk-copy engine (cuda/copy_cuda.cu).
__device__ void copy_kind_bulk(const TiledStateCopy& state, const ResolvedCopy* copies,
                               int64_t num_copies, int64_t block, int64_t num_blocks, int thread);
#endif

// copy_kind_tiles with the copy path of the block's kind, instantiated for its element types.
MAMBA_STATE_HOST_DEVICE void copy_block_tiles(const KernelParams& params,
                                              const ResolvedCopy* copies, int64_t num_copies,
                                              int64_t block, int thread) {
  // No kind: a launch with nothing to copy, whose one block writes the entries' status.
  if (params.num_states == 0 || block >= params.first_block[params.num_states]) return;
  const int k = kind_of_block(params, block);
  const TiledStateCopy& state = params.states[k];
  const int64_t kind_block = block - params.first_block[k];
  const int64_t kind_blocks = params.first_block[k + 1] - params.first_block[k];
  if (state.path == TilePath::kQuantize || state.path == TilePath::kQuantizeGroups) {
    // The threads of a block quantize together; the tests' CPU run of the grid runs those steps
    // a block at a time (tests/grid/grid_on_cpu.cpp).
#if defined(__CUDA_ARCH__)
    const QuantizedCopy& quantized = params.quantized[state.copy.quantized];
    visit_quantization(quantized.source, quantized.format, [&](auto types) {
      using Types = decltype(types);
      using Src = typename Types::Source;
      if (state.path == TilePath::kQuantize) {
        quantize_kind_tiles<Src, Types::format>(state, quantized, copies, num_copies, kind_block,
                                                kind_blocks, thread);
      } else {
        quantize_kind_groups<Src, Types::format>(state, quantized, copies, num_copies, kind_block,
                                                 kind_blocks, thread);
      }
    });
#endif
    return;
  }
  auto copy_with = [&](auto copy_tile) {
    copy_kind_tiles(state, copy_tile, copies, num_copies, kind_block, kind_blocks, thread);
  };
  if (state.path == TilePath::kOneDim && state.unit_elements > 1) {
    visit_conversion(state.copy.conversion, [&](auto types) {
      using Types = decltype(types);
      if constexpr (std::is_same_v<Types, CopyBytesTag>) {
#if MAMBA_STATE_BULK_COPY && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        copy_kind_bulk(state, copies, num_copies, kind_block, kind_blocks, thread);
#else
        copy_with(TileCopy<copy_tile_one_dim<CopyVector>>{});
#endif
      } else {
        using Vector = ConvertVector<typename Types::Source, typename Types::Dest>;
        copy_with(TileCopy<copy_tile_one_dim<Vector>>{});
      }
    });
    return;
  }
  visit_element_op(state.copy.conversion, state.copy.dst_elem_size, [&](auto element) {
    using Element = decltype(element);
    switch (state.path) {
      case TilePath::kOneDim: return copy_with(TileCopy<copy_tile_one_dim<Element>>{});
      case TilePath::kRows:
        // The host picks kRows for 2- and 4-byte destinations only.
        if constexpr (sizeof(typename Element::Value) == 2 ||
                      sizeof(typename Element::Value) == 4) {
          copy_with(TileCopy<copy_tile_rows<Element>>{});
        }
        return;
      case TilePath::kStrided: return copy_with(TileCopy<copy_tile_strided<Element>>{});
    }
  });
}

}  // namespace mamba_state
