// The argument checks of both operators, with the messages users see: shapes, dtypes, devices,
// then memory sharing (memory_overlap.h). They read no index value. Twin of
// mamba_state_ext/checks.py: the same checks in the same order with the same words
// (tests/error_cases.py holds both to one table).
#pragma once

#include <cstdint>
#include <string>

#include <optional>

#include "call.h"
#include "errors.h"
#include "index_rules.h"
#include "quantize.h"

namespace mamba_state {

// The scales of one kind of an update call, when it has them.
struct KindScales {
  const TensorMeta* state_scales;         // nullptr: a plain kind
  const TensorMeta* intermediate_scales;  // nullptr: quantized on commit
  double quant_max;                       // the qmax given, or the pool dtype's largest value
};
using KindsScales = InlineVector<KindScales, 8>;

// Every kind's scales, once scaled_kinds and the lists aligned with it are checked
// (checks.quantized_kinds).
KindsScales kind_scales(const UpdateCall& call);

// The quantized pool dtype or full-precision cache dtype, if it is one.
std::optional<QuantizedFormat> quantized_format(int32_t dtype);
std::optional<QuantizedSource> quantized_source(int32_t dtype);

void check_update(const UpdateCall& call);
void check_copy_slots(const CopySlotsCall& call);

// The message for entry n of index set `set`, which resolve_entry found bad (the first bound it
// broke); checks.describe_bad_entry.
std::string describe_bad_entry(Op op, const EntryIndices& indices, int set, int64_t n,
                               const ResolvedEntry& entry);

}  // namespace mamba_state
