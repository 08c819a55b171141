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

// Two kinds, each a pool and a cache, and six index tensors.
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

void check_update(const UpdateCall& call) {
  constexpr Op op = Op::kUpdate;
  const char* prefix = op_prefix(op);
  const TensorMetas& states = call.states;
  const TensorMetas& intermediates = call.intermediates;
  require(!states.empty(), prefix, "states is empty: pass at least one state pool");
  require(states.size() == intermediates.size(), prefix, "states has ", states.size(),
          " tensors but intermediates has ", intermediates.size());
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
    require(state.dtype == intermediate.dtype ||
                (is_converted_float(state.dtype) && is_converted_float(intermediate.dtype)),
            prefix, "states[", k, "] is ", DtypeName{state.dtype}, " but intermediates[", k,
            "] is ", DtypeName{intermediate.dtype},
            ": only float32, float16 and bfloat16 convert to one another; other dtypes must "
            "match");
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
  arguments.add("entry_status", call.entry_status, true);
  arguments.add_list("intermediates", intermediates, false);
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
