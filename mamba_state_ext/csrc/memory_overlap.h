// Whether views share memory, decided from data pointers, strides and sizes (no data is read).
// Twin of mamba_state_ext/overlap.py, step for step; tests/test_overlap.py holds the two to one
// answer and to a byte-by-byte oracle.
#pragma once

#include <cstdint>

#include "tensor_meta.h"

namespace mamba_state {

// The bytes from a view's first to past its last: [begin, end), empty when it has no element.
struct ByteRange {
  int64_t begin;
  int64_t end;

  bool meets(const ByteRange& other) const {
    return begin < other.end && other.begin < end && begin < end && other.begin < other.end;
  }
};

ByteRange byte_range(const TensorMeta& tensor);

// Whether two elements of the view may share a byte. Sufficient, not necessary: with dims
// ordered by stride, each stride must step past everything the smaller dims span.
bool may_overlap_itself(const TensorMeta& tensor);

// Whether some byte lies in both views. Exact where each dim steps past all that the dims below
// it span (views cut from one parent, the parts of an envelope, a window's outer dims); elsewhere,
// and past kOverlapBudget steps, conservative: true when the byte ranges intersect.
bool share_bytes(const TensorMeta& a, const TensorMeta& b);

}  // namespace mamba_state
