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
  for (size_t first_state = 0; first_state == 0 || first_state < plan.states.size();
       first_state += kMaxStatesPerLaunch) {
    for (int64_t first_task = 0; first_task == 0 || first_task < num_tasks;
         first_task += kMaxTasks) {
      Launch launch{};
      KernelParams& params = launch.params;
      params.indices = plan.indices;
      params.first_task = first_task;
      params.num_tasks = static_cast<int32_t>(std::min<int64_t>(kMaxTasks, num_tasks - first_task));
      if (launches.empty() && plan.entry_status != nullptr) {
        params.entry_status = plan.entry_status;
        params.entry_status_stride = plan.entry_status_stride;
      }
      int64_t tiles[kMaxStatesPerLaunch] = {};
      int64_t total_tiles = 0;
      for (size_t k = first_state;
           k < plan.states.size() && params.num_states < kMaxStatesPerLaunch; ++k) {
        const TiledStateCopy tiled = tile_state(plan.states[k]);
        tiles[params.num_states] = params.num_tasks * tiled.copy.num_layers * tiled.tiles_per_entry;
        total_tiles += tiles[params.num_states];
        params.states[params.num_states++] = tiled;
      }
      // The kinds share the blocks in proportion to their tiles, each at least one block (if it
      // has a tile) and at most one block per tile.
      const int64_t budget = std::min(total_tiles, max_blocks);
      for (int k = 0; k < params.num_states; ++k) {
        const int64_t share = total_tiles == 0 ? 0 : (budget * tiles[k] + total_tiles / 2) / total_tiles;
        const int64_t blocks = std::min(tiles[k], std::max<int64_t>(share, tiles[k] > 0));
        params.first_block[k + 1] = params.first_block[k] + static_cast<int32_t>(blocks);
      }
      launch.num_blocks = params.first_block[params.num_states];
      if (params.entry_status != nullptr && plan.indices.num_entries > 0) {
        launch.num_blocks = std::max<int64_t>(launch.num_blocks, 1);  // block 0 writes the status
      }
      launches.push_back(launch);
    }
  }
  return launches;
}

}  // namespace mamba_state
