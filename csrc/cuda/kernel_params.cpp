#include "kernel_params.h"

#include <algorithm>
#include <cstdint>

namespace mamba_state {
namespace {

bool is_multiple(int64_t value, int64_t of) { return value % of == 0; }

// Every pool and source offset a tile starts from (layer, slot, row and step strides) a whole
// number of units on its side, and both base pointers 16-byte aligned, so that every unit is.
bool bases_aligned(const StateCopy& copy, int64_t dst_unit, int64_t src_unit) {
  for (int64_t stride : {copy.dst_layer_stride, copy.dst_slot_stride}) {
    if (!is_multiple(stride, dst_unit)) return false;
  }
  for (int64_t stride : {copy.src_layer_stride, copy.src_row_stride, copy.src_step_stride}) {
    if (!is_multiple(stride, src_unit)) return false;
  }
  return is_multiple(reinterpret_cast<uintptr_t>(copy.dst), kVectorBytes) &&
         (src_unit == 1 || is_multiple(reinterpret_cast<uintptr_t>(copy.src), kVectorBytes));
}

TiledStateCopy tile_state(const StateCopy& copy) {
  TiledStateCopy tiled{};
  tiled.copy = copy;
  tiled.unit_elements = 1;
  const EntryLayout& entry = copy.entry;
  if (entry.ndim <= 1) {
    tiled.path = TilePath::kOneDim;
    // 16 bytes on the wider side, when the run is contiguous on both sides.
    const int64_t vector = kVectorBytes / std::max(copy.dst_elem_size, copy.src_elem_size);
    if (entry.ndim == 1 && entry.dst_strides[0] == 1 && entry.src_strides[0] == 1 &&
        is_multiple(entry.numel, vector) && bases_aligned(copy, vector, vector)) {
      tiled.unit_elements = static_cast<int32_t>(vector);
    }
  } else {
    tiled.path = TilePath::kStrided;
    const int64_t vector = kVectorBytes / copy.dst_elem_size;
    const bool dst_contiguous = entry.ndim == 2 && entry.dst_strides[1] == 1 &&
                                entry.dst_strides[0] == entry.sizes[1];
    if (dst_contiguous && (copy.dst_elem_size == 2 || copy.dst_elem_size == 4) &&
        is_multiple(entry.numel, vector) && bases_aligned(copy, vector, 1)) {
      tiled.path = TilePath::kRows;
      tiled.unit_elements = static_cast<int32_t>(vector);
    }
  }
  tiled.units_per_entry = entry.numel / tiled.unit_elements;
  tiled.tiles_per_entry = (tiled.units_per_entry + kUnitsPerTile - 1) / kUnitsPerTile;
  return tiled;
}

}  // namespace

std::vector<Launch> make_launches(const UpdatePlan& plan, int64_t max_blocks) {
  const int64_t num_tasks = plan.indices.num_tasks();
  std::vector<Launch> launches;
  size_t next_state = 0;
  do {
    Launch launch{};
    KernelParams& params = launch.params;
    params.indices = plan.indices;
    if (launches.empty() && plan.entry_status != nullptr) {
      params.entry_status = plan.entry_status;
      params.entry_status_stride = plan.entry_status_stride;
    }
    for (; next_state < plan.states.size() && params.num_states < kMaxStatesPerLaunch;
         ++next_state) {
      TiledStateCopy tiled = tile_state(plan.states[next_state]);
      tiled.first_tile = params.tiles_per_task;
      params.states[params.num_states++] = tiled;
      params.tiles_per_task += tiled.copy.num_layers * tiled.tiles_per_entry;
    }
    launch.num_blocks = std::min(num_tasks * params.tiles_per_task, max_blocks);
    if (params.entry_status != nullptr && plan.indices.num_entries > 0) {
      launch.num_blocks = std::max<int64_t>(launch.num_blocks, 1);
    }
    launches.push_back(launch);
  } while (next_state < plan.states.size());
  return launches;
}

}  // namespace mamba_state
