#include "launch_plan.h"

#include <algorithm>
#include <cstdint>

namespace mamba_state {
namespace {

bool is_multiple(int64_t value, int64_t of) {
  return value % of == 0;
}

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

bool is_power_of_two(int64_t value) {
  return value > 0 && (value & (value - 1)) == 0;
}

// A kind quantized on commit: kQuantize where its groups lie one after another in a contiguous
// state, aligned, each a power-of-two number of 16-byte source units that divides a tile; else
// kQuantizeGroups.
TiledStateCopy tile_quantized_state(const StateCopy& copy, const QuantizedCopy& quantized) {
  TiledStateCopy tiled{};
  tiled.copy = copy;
  const StateLayout& group = copy.layout;
  const GroupLayout& groups = quantized.groups;
  const int64_t vector = kVectorBytes / copy.src_elem_size;
  const bool contiguous_group =
      group.ndim == 1 && group.dst_strides[0] == 1 && group.src_strides[0] == 1;
  const bool groups_in_a_row =
      groups.ndim == 0 || (groups.ndim == 1 && groups.dst_strides[0] == group.numel &&
                           groups.src_strides[0] == group.numel);
  const int64_t group_units = group.numel / vector;
  if (kQuantizeTilesFit && contiguous_group && groups_in_a_row &&
      is_multiple(group.numel, vector) && is_power_of_two(group_units) &&
      is_multiple(kUnitsPerTile, group_units) && bases_aligned(copy, vector, vector)) {
    tiled.path = TilePath::kQuantize;
    tiled.unit_elements = static_cast<int32_t>(vector);
    tiled.group_units = static_cast<int32_t>(group_units);
    tiled.units_per_state = group_units * groups.count;
    tiled.tiles_per_state = (tiled.units_per_state + kUnitsPerTile - 1) / kUnitsPerTile;
  } else {
    tiled.path = TilePath::kQuantizeGroups;
    tiled.unit_elements = 1;
    tiled.units_per_state = groups.count;
    tiled.tiles_per_state = (groups.count + kGroupsPerTile - 1) / kGroupsPerTile;
  }
  return tiled;
}

TiledStateCopy tile_state(const StateCopy& copy) {
  TiledStateCopy tiled{};
  tiled.copy = copy;
  tiled.unit_elements = 1;
  const StateLayout& entry = copy.layout;
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
    const bool dst_contiguous =
        entry.ndim == 2 && entry.dst_strides[1] == 1 && entry.dst_strides[0] == entry.sizes[1];
    if (dst_contiguous && (copy.dst_elem_size == 2 || copy.dst_elem_size == 4) &&
        is_multiple(entry.numel, vector) && bases_aligned(copy, vector, 1)) {
      tiled.path = TilePath::kRows;
      tiled.unit_elements = static_cast<int32_t>(vector);
    }
  }
  tiled.units_per_state = entry.numel / tiled.unit_elements;
  tiled.tiles_per_state = (tiled.units_per_state + kUnitsPerTile - 1) / kUnitsPerTile;
  return tiled;
}

// A tile's expected time, in tiles of 16-byte copies. Each thread's part of a tile is one round
// trip (its loads, then its stores), so a block takes about as long per tile whatever the tile's
// bytes; a conv-window tile (kRows: element loads) takes longer, by a weight read off measured
// per-tile times (bench/results/README.md says which run); a kStrided thread copies its elements
// one after another, a round trip each. A kQuantize tile is one round trip too (its scale's
// combining is not yet measured); in kQuantizeGroups a lane reads its group's elements one after
// another, twice.
double tile_weight(const TiledStateCopy& tiled) {
  switch (tiled.path) {
    case TilePath::kOneDim: return 1.0;
    case TilePath::kRows: return MAMBA_STATE_WINDOW_TILE_WEIGHT;
    case TilePath::kStrided: return kUnitsPerThread;
    case TilePath::kQuantize: return 1.0;
    case TilePath::kQuantizeGroups:
      return 2.0 * static_cast<double>((tiled.copy.layout.numel + kWarpSize - 1) / kWarpSize);
  }
  return 1.0;
}

}  // namespace

Launches make_launches(const CopyPlan& plan, int64_t max_blocks) {
  const int64_t num_tasks = plan.indices.num_tasks();
  Launches launches;
  size_t first_state = 0;
  do {  // (once for a plan with no kind: its launch writes the entries' status)
    // This group of kinds: up to kMaxStatesPerLaunch, up to kMaxQuantizedPerLaunch of them
    // quantized on commit.
    size_t end_state = first_state;
    int num_quantized = 0;
    while (end_state < plan.states.size() && end_state - first_state < kMaxStatesPerLaunch) {
      const bool quantized = plan.states[end_state].quantized >= 0;
      if (quantized && num_quantized == kMaxQuantizedPerLaunch) break;
      num_quantized += quantized;
      ++end_state;
    }
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
      double costs[kMaxStatesPerLaunch] = {};
      int64_t total_tiles = 0;
      double total_cost = 0;
      int quantized_here = 0;
      for (size_t k = first_state; k < end_state; ++k) {
        const StateCopy& copy = plan.states[k];
        TiledStateCopy tiled;
        if (copy.quantized >= 0) {
          const QuantizedCopy& quantized = plan.quantized[copy.quantized];
          tiled = tile_quantized_state(copy, quantized);
          params.quantized[quantized_here] = quantized;
          tiled.copy.quantized = quantized_here++;
        } else {
          tiled = tile_state(copy);
        }
        const int k_here = params.num_states++;
        tiles[k_here] = params.num_tasks * tiled.copy.num_layers * tiled.tiles_per_state;
        costs[k_here] = static_cast<double>(tiles[k_here]) * tile_weight(tiled);
        total_tiles += tiles[k_here];
        total_cost += costs[k_here];
        params.states[k_here] = tiled;
      }
      // The kinds share the blocks in proportion to their tiles' expected time, so that they
      // finish together (shared by tile count alone, a conv window's blocks end last). Each kind
      // gets at least one block (if it has a tile) and at most one per tile; the blocks that
      // rounding down leaves go to the kinds with the most time per block, and the blocks that
      // the one-block floor puts past the budget come from the kinds with the least. The total
      // stays within the budget (unless it is smaller than the kinds): a block past the resident
      // ones would start only when another ends, and double the launch's time.
      const int64_t budget = std::min(total_tiles, max_blocks);
      int64_t blocks[kMaxStatesPerLaunch] = {};
      int64_t assigned = 0;
      for (int k = 0; k < params.num_states; ++k) {
        const auto share =
            budget == 0 ? int64_t{0} : static_cast<int64_t>(budget * costs[k] / total_cost);
        blocks[k] = std::min(tiles[k], std::max<int64_t>(share, tiles[k] > 0));
        assigned += blocks[k];
      }
      for (; assigned < budget; ++assigned) {
        int busiest = -1;
        for (int k = 0; k < params.num_states; ++k) {
          if (blocks[k] < tiles[k] &&
              (busiest < 0 || costs[k] * blocks[busiest] > costs[busiest] * blocks[k])) {
            busiest = k;
          }
        }
        if (busiest < 0) break;
        ++blocks[busiest];
      }
      for (; assigned > budget; --assigned) {
        int idlest = -1;
        for (int k = 0; k < params.num_states; ++k) {
          // The kind whose time per block stays least with one block fewer.
          if (blocks[k] > 1 &&
              (idlest < 0 || costs[k] * (blocks[idlest] - 1) < costs[idlest] * (blocks[k] - 1))) {
            idlest = k;
          }
        }
        if (idlest < 0) break;
        --blocks[idlest];
      }
      for (int k = 0; k < params.num_states; ++k) {
        params.first_block[k + 1] = params.first_block[k] + static_cast<int32_t>(blocks[k]);
      }
      launch.num_blocks = params.first_block[params.num_states];
      if (params.entry_status != nullptr && plan.indices.num_entries > 0) {
        launch.num_blocks = std::max<int64_t>(launch.num_blocks, 1);  // block 0 writes the status
      }
      launches.push_back(launch);
    }
    first_state = end_state;
  } while (first_state < plan.states.size());
  return launches;
}

}  // namespace mamba_state
