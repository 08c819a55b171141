// The mamba_state operators: their schemas, and the namespace that defines them. The Python
// fallback, which must define the operators where no library loads, keeps a twin of these strings
// (mamba_state_ext/fallback.py; tests/test_backends.py holds the two equal); the tests' CPU run
// of the CUDA grid defines its operators with these.
#pragma once

#include "registration.h"

namespace mamba_state {

constexpr const char* kUpdateSchema =
    "update(Tensor(a!)[] states, Tensor[] intermediates, Tensor dst_slots, Tensor steps, "
    "Tensor? src_rows=None, int step_offset=0, Tensor(b!)? entry_status=None, "
    "Tensor? track_slots=None, Tensor? track_steps=None, int[]? scaled_kinds=None, "
    "Tensor(c!)[]? state_scales=None, Tensor?[]? intermediate_scales=None, "
    "float[]? quant_max=None) -> ()";

constexpr const char* kCopySlotsSchema =
    "copy_slots(Tensor(a!)[] states, Tensor src_slots, Tensor dst_slots, Tensor? mask=None, "
    "Tensor(b!)? entry_status=None) -> ()";

constexpr const char* kBuildInfoSchema = "build_info() -> str";

// The namespace, defined on first use: every kernel registration calls this first, whatever
// order the static initializers of the translation units run in.
const OperatorNamespace& mamba_state_operators();

}  // namespace mamba_state
