#include "checks.h"

#include <ostream>

#include "inline_vector.h"

#include "constants.h"
#include "memory_overlap.h"

namespace mamba_state {
namespace {

bool is_converted_float(int32_t dtype) {
  const Dtypes& dtypes = Dtypes::get();
  return dtype == dtypes.float32 || dtype == dtypes.float16 || dtype == dtypes.bfloat16;
}

bool same_sizes(Shape a, Shape b) {
  if (a.count != b.count) return false;
  for (int64_t d = 0; d < a.count; ++d) {
    if (a.sizes[d] != b.sizes[d]) return false;
  }
  return true;
}

// An argument's name, "states[1]" or "dst_slots".
struct ArgumentName {
  const char* base;
  int64_t index;  // -1: not an element of a list
};

std::ostream& operator<<(std::ostream& out, const ArgumentName& name) {
  out << name.base;
  if (name.index >= 0) out << "[" << name.index << "]";
  return out;
}

// Two kinds, each a pool and a cache with their scales, and six index tensors.
constexpr size_t kInlineArguments = 16;

struct Argument {
  ArgumentName name;
  const TensorMeta* tensor;
  bool written;
};

// A call's tensor arguments, destinations first, in the order the messages name them.
class Arguments {
 public:
  void add_list(const char* name, const TensorMetas& tensors, bool written) {
    for (size_t k = 0; k < tensors.size(); ++k) {
      arguments_.push_back({{name, static_cast<int64_t>(k)}, &tensors[k], written});
    }
  }
  void add(const char* name, const std::optional<TensorMeta>& tensor, bool written) {
    if (tensor) arguments_.push_back({{name, -1}, &*tensor, written});
  }
  // A scale tensor, named by the kind it belongs to.
  void add_scales(const char* name, const KindsScales& kinds, bool of_states) {
    for (size_t k = 0; k < kinds.size(); ++k) {
      const TensorMeta* tensor = of_states ? kinds[k].state_scales : kinds[k].intermediate_scales;
      if (tensor) arguments_.push_back({{name, static_cast<int64_t>(k)}, tensor, of_states});
    }
  }
  void add(const char* name, const TensorMeta& tensor, bool written) {
    arguments_.push_back({{name, -1}, &tensor, written});
  }

  // Every argument on the device of states[0].
  void check_devices(Op op) const {
    const TensorMeta& device = *arguments_[0].tensor;
    for (const Argument& argument : arguments_) {
      require(argument.tensor->same_device(device), op_prefix(op), argument.name, " is on ",
              DeviceName{argument.tensor}, " but states[0] is on ", DeviceName{&device});
    }
  }

  // No destination shares a byte with itself or with any other argument. Most arguments are
  // allocations of their own: their byte ranges, compared first, settle most pairs.
  void check_no_overlap(Op op) const {
    InlineVector<ByteRange, kInlineArguments> ranges;
    for (const Argument& argument : arguments_) ranges.push_back(byte_range(*argument.tensor));
    for (size_t i = 0; i < arguments_.size(); ++i) {
      const Argument& destination = arguments_[i];
      if (!destination.written) continue;
      require(!may_overlap_itself(*destination.tensor), op_prefix(op), destination.name,
              " has elements that share memory (an expanded or overlapping view): every "
              "destination element needs memory of its own");
      for (size_t j = 0; j < arguments_.size(); ++j) {
        if (j == i || !ranges[i].meets(ranges[j])) continue;
        require(!share_bytes(*destination.tensor, *arguments_[j].tensor), op_prefix(op),
                destination.name, " shares memory with ", arguments_[j].name,
                ": a destination must not overlap any other argument");
      }
    }
  }

 private:
  InlineVector<Argument, kInlineArguments> arguments_;
};

// The list of kind indices, as Python prints it: [1, 1].
struct Kinds {
  const InlineVector<int64_t, 8>* kinds;
};

std::ostream& operator<<(std::ostream& out, const Kinds& kinds) {
  return out << Shape{kinds.kinds->data(), static_cast<int64_t>(kinds.kinds->size())};
}

// A kind with scales: its pool's dtype, its cache's, both scale tensors' shapes and its qmax;
// checks._check_quantized_kind.
void check_quantized_kind(size_t k, const TensorMeta& state, const TensorMeta& intermediate,
                          const KindScales& kind) {
  const char* prefix = op_prefix(Op::kUpdate);
  const std::optional<QuantizedFormat> format = quantized_format(state.dtype);
  require(format.has_value(), prefix, "states[", k, "] is ", DtypeName{state.dtype},
          ": only an int8, float8_e4m3fn or float8_e5m2 pool takes scales");
  require(!kind.intermediate_scales || intermediate.dtype == state.dtype, prefix, "intermediates[",
          k, "] is ", DtypeName{intermediate.dtype}, " but states[", k, "] is ",
          DtypeName{state.dtype}, ": a cache with scales is copied as it is, in the pool's dtype");
  require(kind.intermediate_scales || is_converted_float(intermediate.dtype), prefix,
          "intermediates[", k, "] is ", DtypeName{intermediate.dtype},
          ": a quantized pool is fed from float32, float16 or bfloat16, or from a cache of its "
          "own dtype with intermediate_scales");
  const TensorMeta& scales = *kind.state_scales;
  const int64_t state_dims = state.dim - 2;
  require(scales.dtype == Dtypes::get().float32, prefix, "state_scales[", k,
          "] must be float32 (got ", DtypeName{scales.dtype}, ")");
  require(scales.dim >= 2 && scales.dim - 2 <= state_dims, prefix, "state_scales[", k,
          "] must be [layers, slots, *groups] with no more group dims than states[", k,
          "] has state dims (", state_dims, ") (got shape ", scales.shape(), ")");
  require(scales.size(0) == state.size(0) && scales.size(1) == state.size(1), prefix,
          "state_scales[", k, "] has ", scales.size(0), " layers and ", scales.size(1),
          " slots but states[", k, "] has ", state.size(0), " and ", state.size(1));
  for (int64_t d = 0; d < scales.dim - 2; ++d) {
    const int64_t groups = scales.size(d + 2);
    const int64_t size = state.size(d + 2);
    require((groups != 0 ? size % groups : size) == 0, prefix, "state_scales[", k, "] has ", groups,
            " groups along state dim ", d, ", which does not divide its ", size);
  }
  if (kind.intermediate_scales) {
    const TensorMeta& cache_scales = *kind.intermediate_scales;
    require(cache_scales.dtype == Dtypes::get().float32, prefix, "intermediate_scales[", k,
            "] must be float32 (got ", DtypeName{cache_scales.dtype}, ")");
    InlineVector<int64_t, kMaxStateDims + 3> expected;
    for (int64_t d = 0; d < 3; ++d) expected.push_back(intermediate.size(d));
    for (int64_t d = 2; d < scales.dim; ++d) expected.push_back(scales.size(d));
    const Shape wanted{expected.data(), static_cast<int64_t>(expected.size())};
    require(same_sizes(cache_scales.shape(), wanted), prefix, "intermediate_scales[", k,
            "] must be [layers, rows, steps, *groups] with the groups of state_scales[", k,
            "]: ", wanted, " (got ", cache_scales.shape(), ")");
  }
  const double largest = largest_value(*format);
  // In range before the conversion: a double beyond float's range has no float to convert to.
  require(kind.quant_max > 0 && kind.quant_max <= largest && static_cast<float>(kind.quant_max) > 0,
          prefix, "quant_max of states[", k, "] must be positive as a float32 and at most ",
          DtypeName{state.dtype}, "'s largest value ", largest, " (got ", kind.quant_max, ")");
}

void check_pool_rank(Op op, const TensorMeta& state, size_t k) {
  require(state.dim >= 2, op_prefix(op), "states[", k,
          "] must be [layers, slots, *state] (got shape ", state.shape(), ")");
  require(state.dim - 2 <= kMaxStateDims, op_prefix(op), "states[", k, "] has ", state.dim - 2,
          " state dims; at most ", kMaxStateDims, " are supported");
}

void check_same_slots(Op op, const TensorMetas& states, size_t k) {
  require(states[k].size(1) == states[0].size(1), op_prefix(op), "states[", k, "] has ",
          states[k].size(1), " slots but states[0] has ", states[0].size(1),
          ": every pool must have the same slots");
}

void check_index_tensor(Op op, const TensorMeta& index, const char* name, int64_t num_entries) {
  const Dtypes& dtypes = Dtypes::get();
  require(index.dtype == dtypes.int32 || index.dtype == dtypes.int64, op_prefix(op), name,
          " must be int32 or int64 (got ", DtypeName{index.dtype}, ")");
  require(index.dim == 1, op_prefix(op), name, " must be 1-D (got shape ", index.shape(), ")");
  require(index.numel() == num_entries, op_prefix(op), name, " has ", index.numel(),
          " entries but dst_slots has ", num_entries);
}

void check_entry_status(Op op, const std::optional<TensorMeta>& entry_status, int64_t num_entries) {
  if (!entry_status) return;
  require(entry_status->dtype == Dtypes::get().int32, op_prefix(op),
          "entry_status must be int32 (got ", DtypeName{entry_status->dtype}, ")");
  require(entry_status->dim == 1 && entry_status->numel() == num_entries, op_prefix(op),
          "entry_status must have shape [", num_entries, "], one per entry (got ",
          entry_status->shape(), ")");
}

}  // namespace

std::optional<QuantizedFormat> quantized_format(int32_t dtype) {
  const Dtypes& dtypes = Dtypes::get();
  if (dtype == dtypes.int8) return QuantizedFormat::kInt8;
  if (dtype == dtypes.float8_e4m3fn) return QuantizedFormat::kFloat8E4M3;
  if (dtype == dtypes.float8_e5m2) return QuantizedFormat::kFloat8E5M2;
  return std::nullopt;
}

std::optional<QuantizedSource> quantized_source(int32_t dtype) {
  const Dtypes& dtypes = Dtypes::get();
  if (dtype == dtypes.float32) return QuantizedSource::kFloat;
  if (dtype == dtypes.float16) return QuantizedSource::kHalf;
  if (dtype == dtypes.bfloat16) return QuantizedSource::kBFloat16;
  return std::nullopt;
}

KindsScales kind_scales(const UpdateCall& call) {
  const char* prefix = op_prefix(Op::kUpdate);
  const auto& kinds = call.scaled_kinds;
  bool increasing = true;
  for (size_t i = 0; i < kinds.size(); ++i) {
    increasing = increasing && kinds[i] >= 0 &&
                 kinds[i] < static_cast<int64_t>(call.states.size()) &&
                 (i == 0 || kinds[i] > kinds[i - 1]);
  }
  require(increasing, prefix, "scaled_kinds must be increasing kinds of states, in [0, ",
          call.states.size(), ") (got ", Kinds{&kinds}, ")");
  require(call.state_scales.size() == kinds.size(), prefix, "state_scales has ",
          call.state_scales.size(), " tensors but scaled_kinds has ", kinds.size());
  require(!call.intermediate_scales || call.intermediate_scales->size() == kinds.size(), prefix,
          "intermediate_scales has ",
          call.intermediate_scales ? call.intermediate_scales->size() : 0,
          " items but scaled_kinds has ", kinds.size());
  require(!call.quant_max || call.quant_max->size() == kinds.size(), prefix, "quant_max has ",
          call.quant_max ? call.quant_max->size() : 0, " values but scaled_kinds has ",
          kinds.size());
  KindsScales scales;
  for (size_t k = 0; k < call.states.size(); ++k) scales.push_back({nullptr, nullptr, 0});
  for (size_t i = 0; i < kinds.size(); ++i) {
    KindScales& kind = scales[static_cast<size_t>(kinds[i])];
    kind.state_scales = &call.state_scales[i];
    if (call.intermediate_scales && (*call.intermediate_scales)[i]) {
      kind.intermediate_scales = &*(*call.intermediate_scales)[i];
    }
    const std::optional<QuantizedFormat> format = quantized_format(call.states[kinds[i]].dtype);
    kind.quant_max = call.quant_max ? (*call.quant_max)[i]
                     : format       ? largest_value(*format)
                                    : std::nan("");  // the checks name the pool first
  }
  return scales;
}

void check_update(const UpdateCall& call) {
  constexpr Op op = Op::kUpdate;
  const char* prefix = op_prefix(op);
  const TensorMetas& states = call.states;
  const TensorMetas& intermediates = call.intermediates;
  require(!states.empty(), prefix, "states is empty: pass at least one state pool");
  require(states.size() == intermediates.size(), prefix, "states has ", states.size(),
          " tensors but intermediates has ", intermediates.size());
  const KindsScales scales = kind_scales(call);
  for (size_t k = 0; k < states.size(); ++k) {
    const TensorMeta& state = states[k];
    const TensorMeta& intermediate = intermediates[k];
    check_pool_rank(op, state, k);
    require(intermediate.dim >= 3, prefix, "intermediates[", k,
            "] must be [layers, rows, steps, *state] (got shape ", intermediate.shape(), ")");
    require(intermediate.size(0) == state.size(0), prefix, "intermediates[", k, "] has ",
            intermediate.size(0), " layers but states[", k, "] has ", state.size(0));
    require(same_sizes(intermediate.shape_from(3), state.shape_from(2)), prefix, "intermediates[",
            k, "] has state shape ", intermediate.shape_from(3), " but states[", k, "] has ",
            state.shape_from(2));
    check_same_slots(op, states, k);
    require(intermediate.size(1) == intermediates[0].size(1) &&
                intermediate.size(2) == intermediates[0].size(2),
            prefix, "intermediates[", k, "] has ", intermediate.size(1), " rows and ",
            intermediate.size(2), " steps but intermediates[0] has ", intermediates[0].size(1),
            " rows and ", intermediates[0].size(2), " steps");
    if (scales[k].state_scales) {
      check_quantized_kind(k, state, intermediate, scales[k]);
      continue;
    }
    require(state.dtype == intermediate.dtype ||
                (is_converted_float(state.dtype) && is_converted_float(intermediate.dtype)),
            prefix, "states[", k, "] is ", DtypeName{state.dtype}, " but intermediates[", k,
            "] is ", DtypeName{intermediate.dtype},
            ": only float32, float16 and bfloat16 convert to one another; other dtypes must "
            "match, unless the pool has scales (state_scales)");
  }
  const int64_t num_entries = call.dst_slots.numel();
  check_index_tensor(op, call.dst_slots, "dst_slots", num_entries);
  check_index_tensor(op, call.steps, "steps", num_entries);
  if (call.src_rows) check_index_tensor(op, *call.src_rows, "src_rows", num_entries);
  require(call.track_slots.has_value() == call.track_steps.has_value(), prefix,
          "pass track_slots and track_steps together, or neither");
  if (call.track_slots) {
    check_index_tensor(op, *call.track_slots, "track_slots", num_entries);
    check_index_tensor(op, *call.track_steps, "track_steps", num_entries);
  }
  check_entry_status(op, call.entry_status, num_entries);
  Arguments arguments;
  arguments.add_list("states", states, true);
  arguments.add_scales("state_scales", scales, true);
  arguments.add("entry_status", call.entry_status, true);
  arguments.add_list("intermediates", intermediates, false);
  arguments.add_scales("intermediate_scales", scales, false);
  arguments.add("dst_slots", call.dst_slots, false);
  arguments.add("steps", call.steps, false);
  arguments.add("src_rows", call.src_rows, false);
  arguments.add("track_slots", call.track_slots, false);
  arguments.add("track_steps", call.track_steps, false);
  arguments.check_devices(op);
  arguments.check_no_overlap(op);
}

void check_copy_slots(const CopySlotsCall& call) {
  constexpr Op op = Op::kCopySlots;
  const char* prefix = op_prefix(op);
  const TensorMetas& states = call.states;
  require(!states.empty(), prefix, "states is empty: pass at least one state pool");
  for (size_t k = 0; k < states.size(); ++k) {
    check_pool_rank(op, states[k], k);
    check_same_slots(op, states, k);
  }
  const int64_t num_entries = call.dst_slots.numel();
  check_index_tensor(op, call.dst_slots, "dst_slots", num_entries);
  check_index_tensor(op, call.src_slots, "src_slots", num_entries);
  if (call.mask) {
    require(call.mask->dtype == Dtypes::get().boolean, prefix, "mask must be bool (got ",
            DtypeName{call.mask->dtype}, ")");
    require(call.mask->dim == 1 && call.mask->numel() == num_entries, prefix,
            "mask must have shape [", num_entries, "], one per entry (got ", call.mask->shape(),
            ")");
  }
  check_entry_status(op, call.entry_status, num_entries);
  // Each pool is read and written: it may share no byte with another pool or an index tensor.
  Arguments arguments;
  arguments.add_list("states", states, true);
  arguments.add("entry_status", call.entry_status, true);
  arguments.add("src_slots", call.src_slots, false);
  arguments.add("dst_slots", call.dst_slots, false);
  arguments.add("mask", call.mask, false);
  arguments.check_devices(op);
  arguments.check_no_overlap(op);
}

std::string describe_bad_entry(Op op, const EntryIndices& indices, int set, int64_t n,
                               const ResolvedEntry& entry) {
  const IndexSet& index_set = indices.sets[set];
  const bool track = op == Op::kUpdate && set == 1;
  const char* slot_name = track ? "track slot " : "dst slot ";
  const char* row_name = op == Op::kCopySlots ? "src slot " : "src row ";
  const ResolvedCopy& copy = entry.copy;
  if (entry.status & index_set.slot_bit) {
    return concat(op_prefix(op), "entry ", n, ": ", slot_name, copy.slot, " is out of range [0, ",
                  indices.num_slots, ")");
  }
  if (entry.status & index_set.row_bit) {
    return concat(op_prefix(op), "entry ", n, ": ", row_name, copy.row, " is out of range [0, ",
                  indices.num_rows, ")");
  }
  const std::string step_source =
      track ? concat("track_steps[", n, "]") : concat("steps[", n, "] + step_offset");
  return concat(op_prefix(op), "entry ", n, ": step ", copy.step, " (", step_source,
                ") is out of range [0, ", indices.num_steps, ")");
}

}  // namespace mamba_state
