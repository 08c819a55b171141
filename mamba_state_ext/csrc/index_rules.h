// The index rules of the contract, in one place for both kernels (and the tests' CPU run of the
// CUDA grid), as plain data and inline __host__ __device__ code. Twin of resolve_entries in
// mamba_state_ext/checks.py.
#pragma once

#include <cstdint>

#include "constants.h"
#include "macros.h"

namespace mamba_state {

// A 1-D int32, int64 or bool index tensor.
struct IndexArray {
  const void* data;  // nullptr: absent (IndexSet says what each absent array means)
  int64_t stride;
  int32_t element_size;  // 1 (bool), 4 (int32) or 8 (int64)

  MAMBA_STATE_HOST_DEVICE bool present() const { return data != nullptr; }
  MAMBA_STATE_HOST_DEVICE int64_t operator[](int64_t n) const {
    switch (element_size) {
      case 8: return static_cast<const int64_t*>(data)[n * stride];
      case 4: return static_cast<const int32_t*>(data)[n * stride];
      default: return static_cast<const uint8_t*>(data)[n * stride];
    }
  }
};

// One set of N copies: entry n copies source [row, step] into pool slot dst_slots[n], unless it
// is skipped. The commit and the track copies of update are two sets over the same rows.
struct IndexSet {
  IndexArray dst_slots;
  IndexArray steps;     // absent: step 0 (copy_slots)
  IndexArray src_rows;  // absent: row n (the request's position in the batch)
  IndexArray mask;      // absent: every entry; else entry n applies only where mask[n] != 0
  int64_t step_offset;
  bool negative_row_skips;  // copy_slots: a negative source slot skips, as a negative dst does
  int32_t slot_bit;
  int32_t row_bit;
  int32_t step_bit;
};

constexpr int kMaxIndexSets = 2;

// The index sets of one call and the bounds they are checked against. A task is one (set, entry)
// pair, numbered set-major: task t is entry t % num_entries of set t / num_entries.
struct EntryIndices {
  IndexSet sets[kMaxIndexSets];
  int32_t num_sets;
  int64_t num_entries;
  int64_t num_slots;  // C
  int64_t num_rows;   // R
  int64_t num_steps;  // T

  MAMBA_STATE_HOST_DEVICE int64_t num_tasks() const { return num_sets * num_entries; }
};

// One copy of a (set, entry) pair, its indices resolved: the pool slot it writes and the source
// row and step it reads.
struct ResolvedCopy {
  int64_t slot;
  int64_t row;
  int64_t step;
};

struct ResolvedEntry {
  bool skipped;    // nothing to do, nothing checked
  int32_t status;  // EntryStatusBits of a bad copy, 0 otherwise
  ResolvedCopy copy;

  MAMBA_STATE_HOST_DEVICE bool copies() const { return !skipped && status == 0; }
};

// An entry is skipped when its mask is false, its step (+ step_offset) is negative, its
// destination slot is negative (PAD_SLOT_ID), or, in copy_slots, its source slot is negative; a
// skipped entry's other indices are not checked. Otherwise each index past its bound sets that
// bound's bit.
MAMBA_STATE_HOST_DEVICE ResolvedEntry resolve_entry(const EntryIndices& indices, int set,
                                                    int64_t n) {
  const IndexSet& index_set = indices.sets[set];
  ResolvedEntry entry{true, 0, {0, 0, 0}};
  if (index_set.mask.present() && index_set.mask[n] == 0) return entry;
  ResolvedCopy& copy = entry.copy;
  // Added as unsigned, so that a step and an offset near the int64 limits wrap as torch's int64
  // addition does (the fallback's), without signed overflow.
  copy.step = index_set.steps.present()
                  ? static_cast<int64_t>(static_cast<uint64_t>(index_set.steps[n]) +
                                         static_cast<uint64_t>(index_set.step_offset))
                  : 0;
  if (copy.step < 0) return entry;
  copy.slot = index_set.dst_slots[n];
  if (copy.slot < 0) return entry;
  copy.row = index_set.src_rows.present() ? index_set.src_rows[n] : n;
  if (index_set.negative_row_skips && copy.row < 0) return entry;
  entry.skipped = false;
  if (copy.slot >= indices.num_slots) entry.status |= index_set.slot_bit;
  if (copy.row < 0 || copy.row >= indices.num_rows) entry.status |= index_set.row_bit;
  if (copy.step >= indices.num_steps) entry.status |= index_set.step_bit;
  return entry;
}

// Entry n's status over every set: the bits of each copy it asked for and that broke a bound.
MAMBA_STATE_HOST_DEVICE int32_t entry_status(const EntryIndices& indices, int64_t n) {
  int32_t status = 0;
  for (int set = 0; set < indices.num_sets; ++set) status |= resolve_entry(indices, set, n).status;
  return status;
}

// Whether set `set` of entry n copies, and if so where, in *copy. A bad entry applies none of its
// copies: a good commit is left undone when the entry's track copy is bad.
MAMBA_STATE_HOST_DEVICE bool entry_copies(const EntryIndices& indices, int set, int64_t n,
                                          ResolvedCopy* copy) {
  const ResolvedEntry entry = resolve_entry(indices, set, n);
  *copy = entry.copy;
  return entry.copies() && (indices.num_sets == 1 || entry_status(indices, n) == 0);
}

}  // namespace mamba_state
