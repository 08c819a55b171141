#include "kernel_params.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <climits>
#include <cstdint>

namespace mamba_state {
namespace {

bool is_multiple(int64_t value, int64_t of) { return value % of == 0; }

// Vector units need the innermost run contiguous on both sides, every stride a whole number of
// units, and both base pointers 16-byte aligned (so that every unit is aligned to its size).
bool can_vectorize(const StateCopy& copy, int64_t unit_elements) {
  const EntryLayout& entry = copy.entry;
  if (entry.ndim == 0) return false;
  const int inner = entry.ndim - 1;
  if (entry.dst_strides[inner] != 1 || entry.src_strides[inner] != 1 ||
      !is_multiple(entry.sizes[inner], unit_elements)) {
    return false;
  }
  for (int d = 0; d < inner; ++d) {
    if (!is_multiple(entry.dst_strides[d], unit_elements) ||
        !is_multiple(entry.src_strides[d], unit_elements)) {
      return false;
    }
  }
  for (int64_t stride : {copy.dst_layer_stride, copy.dst_slot_stride, copy.src_layer_stride,
                         copy.src_row_stride, copy.src_step_stride}) {
    if (!is_multiple(stride, unit_elements)) return false;
  }
  return is_multiple(reinterpret_cast<uintptr_t>(copy.dst), kVectorBytes) &&
         is_multiple(reinterpret_cast<uintptr_t>(copy.src), kVectorBytes);
}

TiledStateCopy tile_state(const StateCopy& copy, int64_t num_entries, int64_t first_block) {
  TiledStateCopy tiled{};
  tiled.copy = copy;
  const int64_t vector_elements =
      kVectorBytes / std::max(copy.dst_elem_size, copy.src_elem_size);
  tiled.vectorized = can_vectorize(copy, vector_elements);
  tiled.unit_elements = tiled.vectorized ? static_cast<int32_t>(vector_elements) : 1;
  tiled.units_per_entry = copy.entry.numel / tiled.unit_elements;
  tiled.tiles_per_entry = (tiled.units_per_entry + kUnitsPerTile - 1) / kUnitsPerTile;
  tiled.first_block = first_block;
  return tiled;
}

}  // namespace

std::vector<KernelParams> make_kernel_params(const UpdatePlan& plan) {
  const int64_t num_entries = plan.indices.num_entries;
  std::vector<KernelParams> launches;
  size_t next_state = 0;
  do {
    KernelParams params{};
    params.indices = plan.indices;
    if (launches.empty() && plan.entry_status != nullptr) {
      params.entry_status = plan.entry_status;
      params.entry_status_stride = plan.entry_status_stride;
      params.status_blocks = (num_entries + kThreadsPerBlock - 1) / kThreadsPerBlock;
    }
    int64_t blocks = params.status_blocks;
    for (; next_state < plan.states.size() && params.num_states < kMaxStatesPerLaunch;
         ++next_state) {
      const TiledStateCopy tiled = tile_state(plan.states[next_state], num_entries, blocks);
      params.states[params.num_states++] = tiled;
      blocks += num_entries * tiled.copy.num_layers * tiled.tiles_per_entry;
    }
    TORCH_CHECK(blocks <= INT_MAX, "mamba_state.update: the call needs ", blocks,
                " CUDA blocks, more than one launch can have (", INT_MAX, ")");
    params.num_blocks = blocks;
    launches.push_back(params);
  } while (next_state < plan.states.size());
  return launches;
}

}  // namespace mamba_state
