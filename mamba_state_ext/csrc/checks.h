// The argument checks of both operators, with the messages users see: shapes, dtypes, devices,
// then memory sharing (memory_overlap.h). They read no index value. Twin of
// mamba_state_ext/checks.py: the same checks in the same order with the same words
// (tests/error_cases.py holds both to one table).
#pragma once

#include <cstdint>
#include <string>

#include "call.h"
#include "errors.h"
#include "index_rules.h"

namespace mamba_state {

void check_update(const UpdateCall& call);
void check_copy_slots(const CopySlotsCall& call);

// The message for entry n of index set `set`, which resolve_entry found bad (the first bound it
// broke); checks.describe_bad_entry.
std::string describe_bad_entry(Op op, const EntryIndices& indices, int set, int64_t n,
                               const ResolvedEntry& entry);

}  // namespace mamba_state
