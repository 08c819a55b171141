// What the checks and the plan read of a tensor, read once per call through the stable ABI (each
// read is a call into libtorch) and kept as plain data. Borrowed: valid while the tensor lives.
#pragma once

#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <ostream>

#include "errors.h"

namespace mamba_state {

// The dtypes the checks and the plan compare with, as the stable ABI numbers them
// (aoti_torch_dtype_*). Error messages name any dtype (DtypeName).
struct Dtypes {
  int32_t float32, float16, bfloat16, int64, int32, int8, boolean;
  int32_t float8_e4m3fn, float8_e5m2;
  static const Dtypes& get();
};

struct TensorMeta {
  char* data;
  const int64_t* sizes;
  const int64_t* strides;
  int64_t dim;
  int64_t element_size;
  int32_t dtype;
  int32_t device_type;
  int32_t device_index;

  explicit TensorMeta(const torch::stable::Tensor& tensor);

  int64_t size(int64_t d) const { return sizes[d]; }
  int64_t stride(int64_t d) const { return strides[d]; }
  int64_t numel() const;
  Shape shape() const { return {sizes, dim}; }
  Shape shape_from(int64_t first) const { return {sizes + first, dim - first}; }
  bool same_device(const TensorMeta& other) const {
    return device_type == other.device_type && device_index == other.device_index;
  }
};

// For messages: a dtype as Python spells it (torch.float32), a device as it prints (cuda:0).
struct DtypeName {
  int32_t dtype;
};
std::ostream& operator<<(std::ostream& out, const DtypeName& name);

struct DeviceName {
  const TensorMeta* tensor;
};
std::ostream& operator<<(std::ostream& out, const DeviceName& name);

}  // namespace mamba_state
