// The operators' errors. The stable ABI carries a C++ exception to Python unchanged:
// std::invalid_argument arrives as ValueError, std::out_of_range as IndexError, any other
// std::exception as RuntimeError. So a bad argument is std::invalid_argument, an index out of
// range std::out_of_range, and a failure of the CUDA runtime std::runtime_error.
#pragma once

#include <cstdint>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mamba_state {

enum class Op { kUpdate, kCopySlots };

inline const char* op_prefix(Op op) {
  return op == Op::kUpdate ? "mamba_state.update: " : "mamba_state.copy_slots: ";
}

template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

// The checks run on every call: the parts of a message are formatted only when it is raised.
template <typename... Parts>
void require(bool ok, const Parts&... parts) {
  if (!ok) {
    throw std::invalid_argument(concat(parts...));
  }
}

// A shape, as Python prints a list of sizes: [3, 6].
struct Shape {
  const int64_t* sizes;
  int64_t count;
};

inline std::ostream& operator<<(std::ostream& out, const Shape& shape) {
  out << "[";
  for (int64_t d = 0; d < shape.count; ++d) out << (d ? ", " : "") << shape.sizes[d];
  return out << "]";
}

}  // namespace mamba_state
