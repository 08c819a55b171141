#include "memory_overlap.h"

#include <algorithm>
#include <array>
#include <utility>

#include "constants.h"

namespace mamba_state {
namespace {

// Dims of the views the operators take: [L, R, T, *E] at most, which the shape checks guarantee
// before the memory checks run.
constexpr int kMaxDims = kMaxStateDims + 3;

void require_known_rank(const TensorMeta& tensor) {
  require(tensor.dim <= kMaxDims, "mamba_state: a view of ", tensor.dim,
          " dims reached the memory check");
}

// A view's bytes as its first byte plus (byte stride, size) dims, largest stride first; dims of
// size 1 or stride 0 reach no other byte and are left out.
struct ByteLayout {
  int64_t base;
  int ndim = 0;
  std::array<std::pair<int64_t, int64_t>, kMaxDims> dims;
  std::array<int64_t, kMaxDims + 1> spans;  // spans[i]: bytes from base covered by dims[i:]

  explicit ByteLayout(const TensorMeta& tensor) : base(reinterpret_cast<int64_t>(tensor.data)) {
    require_known_rank(tensor);
    for (int64_t d = 0; d < tensor.dim; ++d) {
      if (tensor.size(d) > 1 && tensor.stride(d) != 0) {
        dims[ndim++] = {tensor.stride(d) * tensor.element_size, tensor.size(d)};
      }
    }
    std::sort(dims.begin(), dims.begin() + ndim, std::greater<>());
    spans[ndim] = tensor.element_size;
    for (int i = ndim; i-- > 0;) spans[i] = spans[i + 1] + dims[i].first * (dims[i].second - 1);
  }
};

int64_t floor_div(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

// Whether some byte lies in both views: a at a_base over a.dims[i:], b at b_base over b.dims[j:].
// The outermost dim is peeled, paired with a dim of the same stride in the other view when it has
// one, and only the block offsets that can meet are followed.
bool share_bytes(const ByteLayout& a, int i, int64_t a_base, const ByteLayout& b, int j,
                 int64_t b_base, int& budget) {
  if (a_base + a.spans[i] <= b_base || b_base + b.spans[j] <= a_base) return false;
  if (i == a.ndim && j == b.ndim) return true;  // two elements whose bytes meet
  if (--budget < 0) return true;
  // Peel the dim with the larger stride; call its view x.
  const bool peel_a = j == b.ndim || (i < a.ndim && a.dims[i] >= b.dims[j]);
  const ByteLayout& x = peel_a ? a : b;
  const ByteLayout& y = peel_a ? b : a;
  const int xi = peel_a ? i : j;
  const int yi = peel_a ? j : i;
  const int64_t x_base = peel_a ? a_base : b_base;
  const int64_t y_base = peel_a ? b_base : a_base;
  const auto [stride, count] = x.dims[xi];
  const int64_t x_inner = x.spans[xi + 1];
  if (x_inner > stride) return true;  // x's blocks interleave with each other
  auto recurse = [&](int x_next, int64_t x_at, int y_next, int64_t y_at) {
    return peel_a ? share_bytes(a, x_next, x_at, b, y_next, y_at, budget)
                  : share_bytes(a, y_next, y_at, b, x_next, x_at, budget);
  };
  if (yi < y.ndim && y.dims[yi].first == stride && y.spans[yi + 1] <= stride) {
    // Block p of x meets block q of y only at q - p = k with k * stride within
    // (x_base - y_base - y_inner, x_base - y_base + x_inner): at most two values of k, and the
    // blocks' contents then meet or not whatever p is.
    const int64_t y_count = y.dims[yi].second;
    const int64_t offset = x_base - y_base;
    for (int64_t k = floor_div(offset - y.spans[yi + 1], stride) + 1; k * stride < offset + x_inner;
         ++k) {
      const bool some_pair = std::max<int64_t>(0, -k) < std::min(count, y_count - k);
      if (some_pair && recurse(xi + 1, x_base, yi + 1, y_base + k * stride)) return true;
    }
    return false;
  }
  // y stays whole: follow the blocks of x that its byte range reaches, if there are few.
  const int64_t first = std::max<int64_t>(0, floor_div(y_base - x_base - x_inner, stride) + 1);
  const int64_t last =
      std::min<int64_t>(count - 1, floor_div(y_base + y.spans[yi] - 1 - x_base, stride));
  if (last - first >= kMaxFollowedBlocks) return true;
  for (int64_t p = first; p <= last; ++p) {
    if (recurse(xi + 1, x_base + p * stride, yi, y_base)) return true;
  }
  return false;
}

}  // namespace

ByteRange byte_range(const TensorMeta& tensor) {
  const int64_t begin = reinterpret_cast<int64_t>(tensor.data);
  int64_t last = 0;  // offset, in elements, of the last element
  for (int64_t d = 0; d < tensor.dim; ++d) {
    if (tensor.size(d) == 0) return {begin, begin};
    last += (tensor.size(d) - 1) * tensor.stride(d);
  }
  return {begin, begin + (last + 1) * tensor.element_size};
}

bool may_overlap_itself(const TensorMeta& tensor) {
  require_known_rank(tensor);
  std::array<std::pair<int64_t, int64_t>, kMaxDims> dims;  // (stride, size)
  int ndim = 0;
  for (int64_t d = 0; d < tensor.dim; ++d) {
    if (tensor.size(d) == 0) return false;
    if (tensor.size(d) > 1) dims[ndim++] = {tensor.stride(d), tensor.size(d)};
  }
  std::sort(dims.begin(), dims.begin() + ndim);
  int64_t span = 1;
  for (int i = 0; i < ndim; ++i) {
    const auto [stride, size] = dims[i];
    if (stride < span) return true;
    span += stride * (size - 1);
  }
  return false;
}

bool share_bytes(const TensorMeta& a, const TensorMeta& b) {
  if (!byte_range(a).meets(byte_range(b))) return false;
  const ByteLayout layout_a(a);
  const ByteLayout layout_b(b);
  int budget = kOverlapBudget;
  return share_bytes(layout_a, 0, layout_a.base, layout_b, 0, layout_b.base, budget);
}

}  // namespace mamba_state
