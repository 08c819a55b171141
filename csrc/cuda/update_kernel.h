// The body of the CUDA kernel, as __host__ __device__ code: update_cuda.cu runs it on the GPU, and
// the test build runs the same functions over the same grid on the CPU (tests/grid_on_cpu.cpp),
// so that the index arithmetic is tested on machines without a GPU.
//
// The grid is persistent (about as many blocks as fit on the GPU at once). A task is one (index
// set, entry) pair. Each block walks the tasks in chunks of kTasksPerChunk: it resolves the
// chunk's indices into shared memory, keeping only the tasks that copy (live tasks), then the
// grid shares out their tiles, block b taking tiles b, b + gridDim, ... So a skipped entry (a
// padding entry of a CUDA-graph batch) costs one index read per block, not a block per tile, and
// a tile's copy needs no index read from global memory.
//
// A task copies every state kind and layer; its tiles are kind by kind, layer by layer. A tile is
// kUnitsPerTile units of one (task, kind, layer), where a unit is 16 bytes (on the wider side of a
// conversion) when the layout allows, else one element. Each thread loads its kUnitsPerThread
// units before it stores any of them.
#pragma once

#include "../copy_plan.h"

#if defined(__CUDACC__)
#define MAMBA_STATE_UNROLL _Pragma("unroll")
#define MAMBA_STATE_NO_UNROLL _Pragma("unroll 1")
#else
#define MAMBA_STATE_OUTLINED
#define MAMBA_STATE_UNROLL
#define MAMBA_STATE_NO_UNROLL
#endif

namespace mamba_state {

constexpr int kThreadsPerBlock = 256;
constexpr int kUnitsPerThread = 4;
constexpr int64_t kUnitsPerTile = kThreadsPerBlock * kUnitsPerThread;
constexpr int kVectorBytes = 16;
constexpr int kMaxStatesPerLaunch = 8;
constexpr int kTasksPerThread = 2;
constexpr int kTasksPerChunk = kThreadsPerBlock * kTasksPerThread;

// How a kind's tiles are copied, by its collapsed entry layout.
enum class TilePath : int32_t {
  kOneDim,   // one run (ndim <= 1, the contiguous case): 16-byte units when aligned
  kRows,     // a contiguous destination read from rows of a 2-D source (a conv window):
             // 16-byte stores, element loads
  kStrided,  // anything else: one element at a time, offsets decomposed per element
};

struct TiledStateCopy {
  StateCopy copy;
  TilePath path;
  int32_t unit_elements;  // elements per unit
  int64_t units_per_entry;
  int64_t tiles_per_entry;  // tiles of one (task, layer)
  int64_t first_tile;       // tiles of the kinds before this one, within a task
};

// The whole launch, filled once on the host and passed by value (no copy to the device).
struct KernelParams {
  EntryIndices indices;
  int32_t* entry_status;  // block 0 writes it; nullptr: not asked for, or not this launch's job
  int64_t entry_status_stride;
  int64_t tiles_per_task;
  int32_t num_states;
  TiledStateCopy states[kMaxStatesPerLaunch];
};
static_assert(sizeof(KernelParams) <= 4096, "CUDA kernel arguments are limited to 4 KiB");

// A task that copies: where its entry goes and where it comes from.
struct LiveTask {
  int64_t slot;
  int64_t row;
  int64_t step;
};

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
  const EntryLayout& entry = state.copy.entry;
  const int64_t dst_step = entry.dst_strides[0] * state.unit_elements * state.copy.dst_elem_size;
  const int64_t src_step = entry.src_strides[0] * state.unit_elements * state.copy.src_elem_size;
  typename Op::Value values[kUnitsPerThread];
  const int64_t first_unit = tile * kUnitsPerTile + thread;
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit < state.units_per_entry) values[j] = Op::load(src + unit * src_step);
  }
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit < state.units_per_entry) Op::store(dst + unit * dst_step, values[j]);
  }
}

// kRows: each unit is kVectorBytes of the contiguous destination, gathered element by element
// from the source rows (row and column advance by counting, with one division per unit), and
// stored at once.
template <typename Element>
MAMBA_STATE_HOST_DEVICE void copy_tile_rows(const TiledStateCopy& state, char* dst,
                                            const char* src, int64_t tile, int thread) {
  using Dst = typename Element::Value;
  constexpr int kElements = kVectorBytes / sizeof(Dst);
  struct alignas(kVectorBytes) Unit {
    Dst values[kElements];
  };
  const EntryLayout& entry = state.copy.entry;
  const int64_t columns = entry.sizes[1];
  const int64_t row_bytes = entry.src_strides[0] * state.copy.src_elem_size;
  const int64_t column_bytes = entry.src_strides[1] * state.copy.src_elem_size;
  Unit units[kUnitsPerThread];
  const int64_t first_unit = tile * kUnitsPerTile + thread;
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit < state.units_per_entry) {
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
    if (unit < state.units_per_entry) {
      *reinterpret_cast<Unit*>(dst + unit * kVectorBytes) = units[j];
    }
  }
}

// kStrided: each element's index is decomposed over the entry dims. One element at a time, so
// that this rare path does not raise the register count (and so lower the occupancy) of the
// whole kernel.
template <typename Op>
MAMBA_STATE_HOST_DEVICE void copy_tile_strided(const TiledStateCopy& state, char* dst,
                                               const char* src, int64_t tile, int thread) {
  const int64_t first_unit = tile * kUnitsPerTile + thread;
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t unit = first_unit + j * kThreadsPerBlock;
    if (unit >= state.units_per_entry) return;
    int64_t dst_offset;
    int64_t src_offset;
    entry_offsets(state.copy.entry, unit, &dst_offset, &src_offset);
    Op::store(dst + dst_offset * state.copy.dst_elem_size,
              Op::load(src + src_offset * state.copy.src_elem_size));
  }
}

// The element-at-a-time paths, for one element type pair.
template <typename Element>
MAMBA_STATE_HOST_DEVICE void copy_tile_by_element(const TiledStateCopy& state, char* dst,
                                                  const char* src, int64_t tile, int thread) {
  switch (state.path) {
    case TilePath::kOneDim: return copy_tile_one_dim<Element>(state, dst, src, tile, thread);
    case TilePath::kRows:
      // The host picks kRows for 2- and 4-byte destinations only.
      if constexpr (sizeof(typename Element::Value) == 2 || sizeof(typename Element::Value) == 4) {
        return copy_tile_rows<Element>(state, dst, src, tile, thread);
      }
      return;
    case TilePath::kStrided: return copy_tile_strided<Element>(state, dst, src, tile, thread);
  }
}

MAMBA_STATE_HOST_DEVICE void copy_tile(const TiledStateCopy& state, char* dst,
                                       const char* src, int64_t tile, int thread) {
  if (state.path == TilePath::kOneDim && state.unit_elements > 1) {
    visit_conversion(state.copy.conversion, [&](auto types) {
      using Types = decltype(types);
      if constexpr (std::is_same_v<Types, CopyBytesTag>) {
        copy_tile_one_dim<CopyVector>(state, dst, src, tile, thread);
      } else {
        using Vector = ConvertVector<typename Types::Source, typename Types::Dest>;
        copy_tile_one_dim<Vector>(state, dst, src, tile, thread);
      }
    });
    return;
  }
  visit_element_op(state.copy.conversion, state.copy.dst_elem_size, [&](auto element) {
    copy_tile_by_element<decltype(element)>(state, dst, src, tile, thread);
  });
}

// Block 0's extra job: every entry's status, its threads striding over the entries.
MAMBA_STATE_HOST_DEVICE void write_entry_status(const KernelParams& params, int thread) {
  for (int64_t n = thread; n < params.indices.num_entries; n += kThreadsPerBlock) {
    params.entry_status[n * params.entry_status_stride] = entry_status(params.indices, n);
  }
}

// Resolves task `task` (one of a chunk's, which threads share out kTasksPerThread each, in
// order); returns whether it copies, and if so where, in *live.
MAMBA_STATE_HOST_DEVICE bool resolve_task(const KernelParams& params, int64_t task,
                                                 LiveTask* live) {
  const EntryIndices& indices = params.indices;
  if (task >= indices.num_tasks()) return false;
  int64_t set;
  int64_t n;
  divide(task, indices.num_entries, &set, &n);
  const ResolvedEntry entry = resolve_entry(indices, static_cast<int>(set), n);
  *live = {entry.slot, entry.row, entry.step};
  return entry.copies();
}

// A thread's part of copying the tiles of num_live live tasks, of which this block takes tiles
// block, block + num_blocks, ... kinds: params.states, or the kernel's copy of it in shared memory
// (a run-time index into the kernel's arguments would make the compiler copy them to the stack).
MAMBA_STATE_HOST_DEVICE void copy_live_tiles(const KernelParams& params,
                                             const TiledStateCopy* kinds, const LiveTask* live,
                                             int64_t num_live, int64_t block, int64_t num_blocks,
                                             int thread) {
  const int64_t num_tiles = num_live * params.tiles_per_task;
  // One tile at a time: each already has kUnitsPerThread loads in flight per thread, and an
  // unrolled tile loop would multiply the registers of every copy path.
  MAMBA_STATE_NO_UNROLL
  for (int64_t t = block; t < num_tiles; t += num_blocks) {
    int64_t task;
    int64_t tile_in_task;
    divide(t, params.tiles_per_task, &task, &tile_in_task);
    int k = params.num_states - 1;
    while (tile_in_task < kinds[k].first_tile) --k;
    const TiledStateCopy& state = kinds[k];
    int64_t layer;
    int64_t tile;
    divide(tile_in_task - state.first_tile, state.tiles_per_entry, &layer, &tile);
    const LiveTask where = live[task];
    copy_tile(state, state.copy.dst_entry(layer, where.slot),
              state.copy.src_entry(layer, where.row, where.step), tile, thread);
  }
}

}  // namespace mamba_state
