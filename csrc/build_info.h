// What this library was built against, as "torch=2.14.1;cuda=13000;archs=800,900" ("cuda=none"
// without CUDA): the operator mamba_state::build_info, which Python's loader and C++ servers read
// through the dispatcher.
#pragma once

#include <string>

namespace mamba_state {

std::string build_info();

}  // namespace mamba_state
