// Twin of mamba_state_ext/checks.py; see checks.h.
#include "checks.h"

#include <c10/util/Exception.h>
#include <c10/util/SmallVector.h>
#include <c10/util/StringUtil.h>

#include <algorithm>
#include <cstdint>
#include <ostream>

namespace mamba_state {
namespace {

const char* op_prefix(Op op) {
  return op == Op::kUpdate ? "mamba_state.update: " : "mamba_state.copy_slots: ";
}

// Python's spelling, so that the compiled op and the Python fallback say the same thing.
std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "torch.float32";
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kDouble: return "torch.float64";
    case at::kLong: return "torch.int64";
    case at::kInt: return "torch.int32";
    case at::kShort: return "torch.int16";
    case at::kChar: return "torch.int8";
    case at::kByte: return "torch.uint8";
    case at::kBool: return "torch.bool";
    default: return std::string("torch.") + c10::toString(dtype);
  }
}

bool is_converted_float(at::ScalarType dtype) {
  return dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16;
}

// An argument's name ("states[1]", "dst_slots"), formatted only when a message needs it: the
// checks run on every call.
struct ArgumentName {
  const char* base;
  int64_t index;  // -1: not an element of a list
};

std::ostream& operator<<(std::ostream& out, const ArgumentName& name) {
  out << name.base;
  if (name.index >= 0) out << "[" << name.index << "]";
  return out;
}

struct NamedTensor {
  ArgumentName name;
  const at::Tensor* tensor;
  bool written;
};
using NamedTensors = c10::SmallVector<NamedTensor, 16>;

void check_pool_rank(Op op, const at::Tensor& state, size_t k) {
  TORCH_CHECK_VALUE(state.dim() >= 2, op_prefix(op), "states[", k,
                    "] must be [layers, slots, *entry] (got shape ", state.sizes(), ")");
  TORCH_CHECK_VALUE(state.dim() - 2 <= kMaxEntryDims, op_prefix(op), "states[", k, "] has ",
                    state.dim() - 2, " entry dims; at most ", kMaxEntryDims, " are supported");
}

void check_same_slots(Op op, at::TensorList states, size_t k) {
  TORCH_CHECK_VALUE(states[k].size(1) == states[0].size(1), op_prefix(op), "states[", k, "] has ",
                    states[k].size(1), " slots but states[0] has ", states[0].size(1),
                    ": every pool must have the same slots");
}

void check_index_tensor(Op op, const at::Tensor& index, const char* name, int64_t num_entries) {
  TORCH_CHECK_TYPE(index.scalar_type() == at::kInt || index.scalar_type() == at::kLong,
                   op_prefix(op), name, " must be int32 or int64 (got ",
                   dtype_name(index.scalar_type()), ")");
  TORCH_CHECK_VALUE(index.dim() == 1, op_prefix(op), name, " must be 1-D (got shape ",
                    index.sizes(), ")");
  TORCH_CHECK_VALUE(index.numel() == num_entries, op_prefix(op), name, " has ", index.numel(),
                    " entries but dst_slots has ", num_entries);
}

void check_entry_status(Op op, const std::optional<at::Tensor>& entry_status,
                        int64_t num_entries) {
  if (!entry_status) return;
  TORCH_CHECK_TYPE(entry_status->scalar_type() == at::kInt, op_prefix(op),
                   "entry_status must be int32 (got ", dtype_name(entry_status->scalar_type()),
                   ")");
  TORCH_CHECK_VALUE(entry_status->dim() == 1 && entry_status->numel() == num_entries,
                    op_prefix(op), "entry_status must have shape [", num_entries,
                    "], one per entry (got ", entry_status->sizes(), ")");
}

void check_devices(Op op, const NamedTensors& arguments) {
  const at::Device device = arguments[0].tensor->device();  // states[0]
  for (const NamedTensor& argument : arguments) {
    TORCH_CHECK_VALUE(argument.tensor->device() == device, op_prefix(op), argument.name,
                      " is on ", argument.tensor->device(), " but states[0] is on ", device);
  }
}

// A sufficient test for "no two elements share memory": with dims ordered by stride, each stride
// must step past everything the smaller dims span. Conservative for exotic interleaved views.
bool may_overlap_itself(const at::Tensor& tensor) {
  c10::SmallVector<std::pair<int64_t, int64_t>, 8> dims;  // (stride, size)
  for (int64_t d = 0; d < tensor.dim(); ++d) {
    if (tensor.size(d) == 0) return false;
    if (tensor.size(d) > 1) dims.emplace_back(tensor.stride(d), tensor.size(d));
  }
  std::sort(dims.begin(), dims.end());
  int64_t span = 1;
  for (const auto& [stride, size] : dims) {
    if (stride < span) return true;
    span += stride * (size - 1);
  }
  return false;
}

// The bytes a tensor touches, as its first byte plus (byte stride, size) dims, largest stride
// first; dims of size 1 or stride 0 touch no other byte and are left out.
struct ByteLayout {
  int64_t base;
  int64_t element_bytes;
  c10::SmallVector<std::pair<int64_t, int64_t>, 12> dims;
  c10::SmallVector<int64_t, 13> spans;  // spans[i]: bytes from base covered by dims[i:]

  explicit ByteLayout(const at::Tensor& tensor)
      : base(reinterpret_cast<int64_t>(tensor.data_ptr())),
        element_bytes(static_cast<int64_t>(tensor.element_size())) {
    for (int64_t d = 0; d < tensor.dim(); ++d) {
      if (tensor.size(d) > 1 && tensor.stride(d) != 0) {
        dims.emplace_back(tensor.stride(d) * element_bytes, tensor.size(d));
      }
    }
    std::sort(dims.begin(), dims.end(), [](const auto& a, const auto& b) { return a > b; });
    spans.resize(dims.size() + 1);
    spans[dims.size()] = element_bytes;
    for (size_t i = dims.size(); i-- > 0;) {
      spans[i] = spans[i + 1] + dims[i].first * (dims[i].second - 1);
    }
  }
};

// Blocks of one tensor followed against the whole of another before the test gives up.
constexpr int64_t kMaxFollowedBlocks = 4;

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Whether some byte lies in both tensors: a at base a_base over a.dims[i:], b likewise over
// b.dims[j:]. Exact where each peeled dim steps past all that the dims below it span (a pool's
// layer and slot dims, an envelope's slot dim over its interleaved parts, a window's outer dims):
// the outermost dim is peeled, paired with a dim of the same stride in the other tensor when it
// has one, and only the block offsets that can meet are followed. Elsewhere, and past `budget`
// steps, it answers conservatively: true when the byte ranges intersect.
bool share_bytes(const ByteLayout& a, size_t i, int64_t a_base, const ByteLayout& b, size_t j,
                 int64_t b_base, int& budget) {
  if (a_base + a.spans[i] <= b_base || b_base + b.spans[j] <= a_base) return false;
  if (i == a.dims.size() && j == b.dims.size()) return true;  // two intersecting elements
  if (--budget < 0) return true;
  // Peel the dim with the larger stride; call its tensor x.
  const bool peel_a = j == b.dims.size() || (i < a.dims.size() && a.dims[i] >= b.dims[j]);
  const ByteLayout& x = peel_a ? a : b;
  const ByteLayout& y = peel_a ? b : a;
  const size_t xi = peel_a ? i : j;
  const size_t yi = peel_a ? j : i;
  const int64_t x_base = peel_a ? a_base : b_base;
  const int64_t y_base = peel_a ? b_base : a_base;
  const auto [stride, count] = x.dims[xi];
  const int64_t x_inner = x.spans[xi + 1];
  if (x_inner > stride) return true;  // x's blocks interleave with each other
  auto recurse = [&](size_t x_next, int64_t x_at, size_t y_next, int64_t y_at) {
    return peel_a ? share_bytes(a, x_next, x_at, b, y_next, y_at, budget)
                  : share_bytes(a, y_next, y_at, b, x_next, x_at, budget);
  };
  if (yi < y.dims.size() && y.dims[yi].first == stride && y.spans[yi + 1] <= stride) {
    // Block p of x meets block q of y only at q - p = k with k * stride within
    // (x_base - y_base - y_inner, x_base - y_base + x_inner): at most two values of k, and the
    // blocks' contents then meet or not whatever p is.
    const int64_t y_count = y.dims[yi].second;
    const int64_t offset = x_base - y_base;
    for (int64_t k = floor_div(offset - y.spans[yi + 1], stride) + 1;
         k * stride < offset + x_inner; ++k) {
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

bool share_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0 || b.numel() == 0) return false;
  const ByteLayout layout_a(a);
  const ByteLayout layout_b(b);
  int budget = 1024;
  return share_bytes(layout_a, 0, layout_a.base, layout_b, 0, layout_b.base, budget);
}

// No destination may share a byte with itself or with any other argument.
void check_no_overlap(Op op, const NamedTensors& arguments) {
  for (size_t i = 0; i < arguments.size(); ++i) {
    if (!arguments[i].written) continue;
    TORCH_CHECK_VALUE(!may_overlap_itself(*arguments[i].tensor), op_prefix(op),
                      arguments[i].name,
                      " has elements that share memory (an expanded or overlapping view): every "
                      "destination element needs memory of its own");
    for (size_t j = 0; j < arguments.size(); ++j) {
      if (j == i) continue;
      TORCH_CHECK_VALUE(!share_bytes(*arguments[i].tensor, *arguments[j].tensor), op_prefix(op),
                        arguments[i].name, " shares memory with ", arguments[j].name,
                        ": a destination must not overlap any other argument");
    }
  }
}

// update's tensor arguments, destinations first, in the order the messages name them.
NamedTensors update_arguments(at::TensorList states, at::TensorList intermediates,
                              const at::Tensor& dst_slots, const at::Tensor& steps,
                              const std::optional<at::Tensor>& src_rows,
                              const std::optional<at::Tensor>& entry_status,
                              const std::optional<at::Tensor>& track_slots,
                              const std::optional<at::Tensor>& track_steps) {
  NamedTensors arguments;
  for (size_t k = 0; k < states.size(); ++k) {
    arguments.push_back({{"states", static_cast<int64_t>(k)}, &states[k], true});
  }
  if (entry_status) arguments.push_back({{"entry_status", -1}, &*entry_status, true});
  for (size_t k = 0; k < intermediates.size(); ++k) {
    arguments.push_back({{"intermediates", static_cast<int64_t>(k)}, &intermediates[k], false});
  }
  arguments.push_back({{"dst_slots", -1}, &dst_slots, false});
  arguments.push_back({{"steps", -1}, &steps, false});
  if (src_rows) arguments.push_back({{"src_rows", -1}, &*src_rows, false});
  if (track_slots) arguments.push_back({{"track_slots", -1}, &*track_slots, false});
  if (track_steps) arguments.push_back({{"track_steps", -1}, &*track_steps, false});
  return arguments;
}

}  // namespace

void check_update_args(at::TensorList states, at::TensorList intermediates,
                       const at::Tensor& dst_slots, const at::Tensor& steps,
                       const std::optional<at::Tensor>& src_rows,
                       const std::optional<at::Tensor>& entry_status,
                       const std::optional<at::Tensor>& track_slots,
                       const std::optional<at::Tensor>& track_steps) {
  constexpr Op op = Op::kUpdate;
  const char* prefix = op_prefix(op);
  TORCH_CHECK_VALUE(!states.empty(), prefix, "states is empty: pass at least one state pool");
  TORCH_CHECK_VALUE(states.size() == intermediates.size(), prefix, "states has ", states.size(),
                    " tensors but intermediates has ", intermediates.size());
  for (size_t k = 0; k < states.size(); ++k) {
    const at::Tensor& state = states[k];
    const at::Tensor& intermediate = intermediates[k];
    check_pool_rank(op, state, k);
    TORCH_CHECK_VALUE(intermediate.dim() >= 3, prefix, "intermediates[", k,
                      "] must be [layers, rows, steps, *entry] (got shape ", intermediate.sizes(),
                      ")");
    TORCH_CHECK_VALUE(intermediate.size(0) == state.size(0), prefix, "intermediates[", k,
                      "] has ", intermediate.size(0), " layers but states[", k, "] has ",
                      state.size(0));
    TORCH_CHECK_VALUE(intermediate.sizes().slice(3) == state.sizes().slice(2), prefix,
                      "intermediates[", k, "] has entry shape ", intermediate.sizes().slice(3),
                      " but states[", k, "] has ", state.sizes().slice(2));
    check_same_slots(op, states, k);
    TORCH_CHECK_VALUE(
        intermediate.size(1) == intermediates[0].size(1) &&
            intermediate.size(2) == intermediates[0].size(2),
        prefix, "intermediates[", k, "] has ", intermediate.size(1), " rows and ",
        intermediate.size(2), " steps but intermediates[0] has ", intermediates[0].size(1),
        " rows and ", intermediates[0].size(2), " steps");
    const at::ScalarType dst_dtype = state.scalar_type();
    const at::ScalarType src_dtype = intermediate.scalar_type();
    TORCH_CHECK_TYPE(dst_dtype == src_dtype || (is_converted_float(dst_dtype) &&
                                                is_converted_float(src_dtype)),
                     prefix, "states[", k, "] is ", dtype_name(dst_dtype), " but intermediates[",
                     k, "] is ", dtype_name(src_dtype),
                     ": only float32, float16 and bfloat16 convert to one another; other dtypes "
                     "must match");
  }
  const int64_t num_entries = dst_slots.numel();
  check_index_tensor(op, dst_slots, "dst_slots", num_entries);
  check_index_tensor(op, steps, "steps", num_entries);
  if (src_rows) check_index_tensor(op, *src_rows, "src_rows", num_entries);
  TORCH_CHECK_VALUE(track_slots.has_value() == track_steps.has_value(), prefix,
                    "pass track_slots and track_steps together, or neither");
  if (track_slots) {
    check_index_tensor(op, *track_slots, "track_slots", num_entries);
    check_index_tensor(op, *track_steps, "track_steps", num_entries);
  }
  check_entry_status(op, entry_status, num_entries);
  const NamedTensors arguments = update_arguments(states, intermediates, dst_slots, steps,
                                                  src_rows, entry_status, track_slots,
                                                  track_steps);
  check_devices(op, arguments);
  check_no_overlap(op, arguments);
}

void check_copy_slots_args(at::TensorList states, const at::Tensor& src_slots,
                           const at::Tensor& dst_slots, const std::optional<at::Tensor>& mask,
                           const std::optional<at::Tensor>& entry_status) {
  constexpr Op op = Op::kCopySlots;
  const char* prefix = op_prefix(op);
  TORCH_CHECK_VALUE(!states.empty(), prefix, "states is empty: pass at least one state pool");
  for (size_t k = 0; k < states.size(); ++k) {
    check_pool_rank(op, states[k], k);
    check_same_slots(op, states, k);
  }
  const int64_t num_entries = dst_slots.numel();
  check_index_tensor(op, dst_slots, "dst_slots", num_entries);
  check_index_tensor(op, src_slots, "src_slots", num_entries);
  if (mask) {
    TORCH_CHECK_TYPE(mask->scalar_type() == at::kBool, prefix, "mask must be bool (got ",
                     dtype_name(mask->scalar_type()), ")");
    TORCH_CHECK_VALUE(mask->dim() == 1 && mask->numel() == num_entries, prefix,
                      "mask must have shape [", num_entries, "], one per entry (got ",
                      mask->sizes(), ")");
  }
  check_entry_status(op, entry_status, num_entries);
  // Each pool is read and written: it may share no byte with another pool or an index tensor.
  NamedTensors arguments;
  for (size_t k = 0; k < states.size(); ++k) {
    arguments.push_back({{"states", static_cast<int64_t>(k)}, &states[k], true});
  }
  if (entry_status) arguments.push_back({{"entry_status", -1}, &*entry_status, true});
  arguments.push_back({{"src_slots", -1}, &src_slots, false});
  arguments.push_back({{"dst_slots", -1}, &dst_slots, false});
  if (mask) arguments.push_back({{"mask", -1}, &*mask, false});
  check_devices(op, arguments);
  check_no_overlap(op, arguments);
}

std::string describe_bad_entry(Op op, const EntryIndices& indices, int set, int64_t n,
                               const ResolvedEntry& entry) {
  const IndexSet& index_set = indices.sets[set];
  const bool track = op == Op::kUpdate && set == 1;
  const char* slot_name = track ? "track slot " : "dst slot ";
  const char* row_name = op == Op::kCopySlots ? "src slot " : "src row ";
  const int64_t num_rows = indices.num_rows;
  const std::string where = c10::str(op_prefix(op), "entry ", n, ": ");
  if (entry.status & index_set.slot_bit) {
    return c10::str(where, slot_name, entry.slot, " is out of range [0, ", indices.num_slots,
                    ")");
  }
  if (entry.status & index_set.row_bit) {
    return c10::str(where, row_name, entry.row, " is out of range [0, ", num_rows, ")");
  }
  const std::string step_source =
      track ? c10::str("track_steps[", n, "]") : c10::str("steps[", n, "] + step_offset");
  return c10::str(where, "step ", entry.step, " (", step_source, ") is out of range [0, ",
                  indices.num_steps, ")");
}

}  // namespace mamba_state
