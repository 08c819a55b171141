#include "update_plan.h"

#include <c10/util/Exception.h>
#include <c10/util/SmallVector.h>
#include <c10/util/StringUtil.h>

#include <algorithm>
#include <cstdint>
#include <ostream>

namespace mamba_state {
namespace {

constexpr const char* kOp = "mamba_state.update: ";

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

Conversion conversion_between(at::ScalarType src, at::ScalarType dst) {
  if (src == dst) return Conversion::kCopyBytes;
  switch (src) {
    case at::kFloat: return dst == at::kHalf ? Conversion::kFloatToHalf : Conversion::kFloatToBFloat16;
    case at::kHalf: return dst == at::kFloat ? Conversion::kHalfToFloat : Conversion::kHalfToBFloat16;
    default: return dst == at::kFloat ? Conversion::kBFloat16ToFloat : Conversion::kBFloat16ToHalf;
  }
}

void check_index_tensor(const at::Tensor& index, const char* name, int64_t num_entries) {
  TORCH_CHECK_TYPE(index.scalar_type() == at::kInt || index.scalar_type() == at::kLong, kOp, name,
                   " must be int32 or int64 (got ", dtype_name(index.scalar_type()), ")");
  TORCH_CHECK_VALUE(index.dim() == 1, kOp, name, " must be 1-D (got shape ", index.sizes(), ")");
  TORCH_CHECK_VALUE(index.numel() == num_entries, kOp, name, " has ", index.numel(),
                    " entries but dst_slots has ", num_entries);
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

// Every tensor argument, destinations first, in the order the messages name them.
c10::SmallVector<NamedTensor, 16> named_arguments(at::TensorList states,
                                                  at::TensorList intermediates,
                                                  const at::Tensor& dst_slots,
                                                  const at::Tensor& steps,
                                                  const std::optional<at::Tensor>& src_rows,
                                                  const std::optional<at::Tensor>& entry_status) {
  c10::SmallVector<NamedTensor, 16> arguments;
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
  return arguments;
}

// A sufficient test for "no two elements share memory": with dims ordered by stride, each stride
// must step past everything the smaller dims span. Conservative for exotic interleaved views.
bool may_overlap_itself(const at::Tensor& tensor) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size)
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

struct ByteRange {
  uintptr_t begin;
  uintptr_t end;
};

// The bytes from a tensor's first to its last element; empty for a tensor with no elements.
ByteRange byte_range(const at::Tensor& tensor) {
  if (tensor.numel() == 0) return {0, 0};
  int64_t span = 1;
  for (int64_t d = 0; d < tensor.dim(); ++d) span += tensor.stride(d) * (tensor.size(d) - 1);
  const auto begin = reinterpret_cast<uintptr_t>(tensor.data_ptr());
  return {begin, begin + static_cast<uintptr_t>(span * tensor.element_size())};
}

void check_no_overlap(c10::ArrayRef<NamedTensor> arguments) {
  for (size_t i = 0; i < arguments.size(); ++i) {
    if (!arguments[i].written) continue;
    TORCH_CHECK_VALUE(!may_overlap_itself(*arguments[i].tensor), kOp, arguments[i].name,
                      " has elements that share memory (an expanded or overlapping view): every "
                      "destination element needs memory of its own");
    const ByteRange written = byte_range(*arguments[i].tensor);
    for (size_t j = 0; j < arguments.size(); ++j) {
      if (j == i) continue;
      const ByteRange other = byte_range(*arguments[j].tensor);
      const bool disjoint = written.begin >= written.end || other.begin >= other.end ||
                            written.end <= other.begin || other.end <= written.begin;
      TORCH_CHECK_VALUE(disjoint, kOp, arguments[i].name, " shares memory with ",
                        arguments[j].name, ": a destination must not overlap any other argument");
    }
  }
}

EntryLayout collapse_entry(const at::Tensor& state, const at::Tensor& intermediate) {
  struct Dim {
    int64_t size, dst_stride, src_stride;
  };
  std::vector<Dim> dims;
  EntryLayout layout{};
  layout.numel = 1;
  for (int64_t d = 2; d < state.dim(); ++d) {
    const int64_t size = state.size(d);
    layout.numel *= size;
    if (size != 1) dims.push_back({size, state.stride(d), intermediate.stride(d + 1)});
  }
  if (layout.numel == 0) return layout;
  // Walk the destination in memory order, so that writes are as contiguous as they can be.
  std::stable_sort(dims.begin(), dims.end(), [](const Dim& a, const Dim& b) {
    return a.dst_stride != b.dst_stride ? a.dst_stride > b.dst_stride : a.src_stride > b.src_stride;
  });
  for (const Dim& dim : dims) {
    if (layout.ndim > 0) {
      const int last = layout.ndim - 1;
      if (layout.dst_strides[last] == dim.size * dim.dst_stride &&
          layout.src_strides[last] == dim.size * dim.src_stride) {
        layout.sizes[last] *= dim.size;
        layout.dst_strides[last] = dim.dst_stride;
        layout.src_strides[last] = dim.src_stride;
        continue;
      }
    }
    layout.sizes[layout.ndim] = dim.size;
    layout.dst_strides[layout.ndim] = dim.dst_stride;
    layout.src_strides[layout.ndim] = dim.src_stride;
    ++layout.ndim;
  }
  return layout;
}

IndexArray index_array(const at::Tensor& index) {
  return {index.data_ptr(), index.stride(0), index.scalar_type() == at::kLong};
}

// The checks that need only shapes, dtypes and devices; mirrored by checks.check_update_args.
void check_update_args(at::TensorList states, at::TensorList intermediates,
                       const at::Tensor& dst_slots, const at::Tensor& steps,
                       const std::optional<at::Tensor>& src_rows,
                       const std::optional<at::Tensor>& entry_status) {
  TORCH_CHECK_VALUE(!states.empty(), kOp, "states is empty: pass at least one state pool");
  TORCH_CHECK_VALUE(states.size() == intermediates.size(), kOp, "states has ", states.size(),
                    " tensors but intermediates has ", intermediates.size());
  for (size_t k = 0; k < states.size(); ++k) {
    const at::Tensor& state = states[k];
    const at::Tensor& intermediate = intermediates[k];
    TORCH_CHECK_VALUE(state.dim() >= 2, kOp, "states[", k,
                      "] must be [layers, slots, *entry] (got shape ", state.sizes(), ")");
    TORCH_CHECK_VALUE(intermediate.dim() >= 3, kOp, "intermediates[", k,
                      "] must be [layers, rows, steps, *entry] (got shape ", intermediate.sizes(),
                      ")");
    TORCH_CHECK_VALUE(state.dim() - 2 <= kMaxEntryDims, kOp, "states[", k, "] has ",
                      state.dim() - 2, " entry dims; at most ", kMaxEntryDims, " are supported");
    TORCH_CHECK_VALUE(intermediate.size(0) == state.size(0), kOp, "intermediates[", k, "] has ",
                      intermediate.size(0), " layers but states[", k, "] has ", state.size(0));
    TORCH_CHECK_VALUE(intermediate.sizes().slice(3) == state.sizes().slice(2), kOp,
                      "intermediates[", k, "] has entry shape ", intermediate.sizes().slice(3),
                      " but states[", k, "] has ", state.sizes().slice(2));
    TORCH_CHECK_VALUE(state.size(1) == states[0].size(1), kOp, "states[", k, "] has ",
                      state.size(1), " slots but states[0] has ", states[0].size(1),
                      ": every pool must have the same slots");
    TORCH_CHECK_VALUE(
        intermediate.size(1) == intermediates[0].size(1) &&
            intermediate.size(2) == intermediates[0].size(2),
        kOp, "intermediates[", k, "] has ", intermediate.size(1), " rows and ",
        intermediate.size(2), " steps but intermediates[0] has ", intermediates[0].size(1),
        " rows and ", intermediates[0].size(2), " steps");
    const at::ScalarType dst_dtype = state.scalar_type();
    const at::ScalarType src_dtype = intermediate.scalar_type();
    TORCH_CHECK_TYPE(dst_dtype == src_dtype || (is_converted_float(dst_dtype) &&
                                                is_converted_float(src_dtype)),
                     kOp, "states[", k, "] is ", dtype_name(dst_dtype), " but intermediates[", k,
                     "] is ", dtype_name(src_dtype),
                     ": only float32, float16 and bfloat16 convert to one another; other dtypes "
                     "must match");
  }
  const int64_t num_entries = dst_slots.numel();
  check_index_tensor(dst_slots, "dst_slots", num_entries);
  check_index_tensor(steps, "steps", num_entries);
  if (src_rows) check_index_tensor(*src_rows, "src_rows", num_entries);
  if (entry_status) {
    TORCH_CHECK_TYPE(entry_status->scalar_type() == at::kInt, kOp,
                     "entry_status must be int32 (got ", dtype_name(entry_status->scalar_type()),
                     ")");
    TORCH_CHECK_VALUE(entry_status->dim() == 1 && entry_status->numel() == num_entries, kOp,
                      "entry_status must have shape [", num_entries, "], one per entry (got ",
                      entry_status->sizes(), ")");
  }
  const at::Device device = states[0].device();
  for (const NamedTensor& argument :
       named_arguments(states, intermediates, dst_slots, steps, src_rows, entry_status)) {
    TORCH_CHECK_VALUE(argument.tensor->device() == device, kOp, argument.name, " is on ",
                      argument.tensor->device(), " but states[0] is on ", device);
  }
}

}  // namespace

UpdatePlan plan_update(at::TensorList states, at::TensorList intermediates,
                       const at::Tensor& dst_slots, const at::Tensor& steps,
                       const std::optional<at::Tensor>& src_rows, int64_t step_offset,
                       const std::optional<at::Tensor>& entry_status) {
  check_update_args(states, intermediates, dst_slots, steps, src_rows, entry_status);
  check_no_overlap(
      named_arguments(states, intermediates, dst_slots, steps, src_rows, entry_status));

  UpdatePlan plan{};
  plan.indices.dst_slots = index_array(dst_slots);
  plan.indices.steps = index_array(steps);
  plan.indices.src_rows = src_rows ? index_array(*src_rows) : IndexArray{nullptr, 0, false};
  plan.indices.num_entries = dst_slots.numel();
  plan.indices.step_offset = step_offset;
  plan.indices.num_slots = states[0].size(1);
  plan.indices.num_rows = intermediates[0].size(1);
  plan.indices.num_steps = intermediates[0].size(2);
  plan.entry_status = entry_status ? entry_status->data_ptr<int32_t>() : nullptr;
  plan.entry_status_stride = entry_status ? entry_status->stride(0) : 0;

  for (size_t k = 0; k < states.size(); ++k) {
    const at::Tensor& state = states[k];
    const at::Tensor& intermediate = intermediates[k];
    StateCopy copy{};
    copy.entry = collapse_entry(state, intermediate);
    if (copy.entry.numel == 0 || state.size(0) == 0) continue;  // nothing to copy
    copy.dst = static_cast<char*>(state.data_ptr());
    copy.src = static_cast<const char*>(intermediate.data_ptr());
    copy.num_layers = state.size(0);
    copy.dst_layer_stride = state.stride(0);
    copy.dst_slot_stride = state.stride(1);
    copy.src_layer_stride = intermediate.stride(0);
    copy.src_row_stride = intermediate.stride(1);
    copy.src_step_stride = intermediate.stride(2);
    copy.dst_elem_size = static_cast<int32_t>(state.element_size());
    TORCH_INTERNAL_ASSERT(copy.dst_elem_size == 1 || copy.dst_elem_size == 2 ||
                          copy.dst_elem_size == 4 || copy.dst_elem_size == 8 ||
                          copy.dst_elem_size == 16);
    copy.src_elem_size = static_cast<int32_t>(intermediate.element_size());
    copy.conversion = conversion_between(intermediate.scalar_type(), state.scalar_type());
    plan.states.push_back(copy);
  }
  return plan;
}

std::string describe_bad_entry(const EntryIndices& indices, int64_t n,
                               const ResolvedEntry& entry) {
  if (entry.status & kSlotOutOfRange) {
    return c10::str(kOp, "entry ", n, ": dst slot ", entry.slot, " is out of range [0, ",
                    indices.num_slots, ")");
  }
  if (entry.status & kRowOutOfRange) {
    return c10::str(kOp, "entry ", n, ": src row ", entry.row, " is out of range [0, ",
                    indices.num_rows, ")");
  }
  return c10::str(kOp, "entry ", n, ": step ", entry.step, " (steps[", n,
                  "] + step_offset) is out of range [0, ", indices.num_steps, ")");
}

}  // namespace mamba_state
