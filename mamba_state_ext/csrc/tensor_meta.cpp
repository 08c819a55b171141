#include "tensor_meta.h"

#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/headeronly/util/shim_utils.h>

namespace mamba_state {

const Dtypes& Dtypes::get() {
  static const Dtypes dtypes{
      aoti_torch_dtype_float32(), aoti_torch_dtype_float16(),       aoti_torch_dtype_bfloat16(),
      aoti_torch_dtype_int64(),   aoti_torch_dtype_int32(),         aoti_torch_dtype_int8(),
      aoti_torch_dtype_bool(),    aoti_torch_dtype_float8_e4m3fn(), aoti_torch_dtype_float8_e5m2()};
  return dtypes;
}

TensorMeta::TensorMeta(const torch::stable::Tensor& tensor) {
  AtenTensorHandle handle = tensor.get();
  void* pointer = nullptr;
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_data_ptr(handle, &pointer));
  data = static_cast<char*>(pointer);
  int64_t* sizes_pointer = nullptr;
  int64_t* strides_pointer = nullptr;
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_sizes(handle, &sizes_pointer));
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_strides(handle, &strides_pointer));
  sizes = sizes_pointer;
  strides = strides_pointer;
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_dim(handle, &dim));
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_dtype(handle, &dtype));
  element_size = static_cast<int64_t>(aoti_torch_dtype_element_size(dtype));
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_device_type(handle, &device_type));
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_device_index(handle, &device_index));
}

int64_t TensorMeta::numel() const {
  int64_t count = 1;
  for (int64_t d = 0; d < dim; ++d) count *= sizes[d];
  return count;
}

std::ostream& operator<<(std::ostream& out, const DtypeName& name) {
  struct Named {
    int32_t (*dtype)();
    const char* name;
  };
  static const Named names[] = {
      {aoti_torch_dtype_float32, "float32"},
      {aoti_torch_dtype_float16, "float16"},
      {aoti_torch_dtype_bfloat16, "bfloat16"},
      {aoti_torch_dtype_float64, "float64"},
      {aoti_torch_dtype_int64, "int64"},
      {aoti_torch_dtype_int32, "int32"},
      {aoti_torch_dtype_int16, "int16"},
      {aoti_torch_dtype_int8, "int8"},
      {aoti_torch_dtype_uint8, "uint8"},
      {aoti_torch_dtype_bool, "bool"},
      {aoti_torch_dtype_complex32, "complex32"},
      {aoti_torch_dtype_complex64, "complex64"},
      {aoti_torch_dtype_complex128, "complex128"},
      {aoti_torch_dtype_uint16, "uint16"},
      {aoti_torch_dtype_uint32, "uint32"},
      {aoti_torch_dtype_uint64, "uint64"},
      {aoti_torch_dtype_float8_e5m2, "float8_e5m2"},
      {aoti_torch_dtype_float8_e4m3fn, "float8_e4m3fn"},
      {aoti_torch_dtype_float8_e5m2fnuz, "float8_e5m2fnuz"},
      {aoti_torch_dtype_float8_e4m3fnuz, "float8_e4m3fnuz"},
  };
  for (const Named& named : names) {
    if (named.dtype() == name.dtype) return out << "torch." << named.name;
  }
  return out << "a dtype of stable-ABI code " << name.dtype;
}

std::ostream& operator<<(std::ostream& out, const DeviceName& name) {
  const int32_t type = name.tensor->device_type;
  if (type == aoti_torch_device_type_cpu()) return out << "cpu";
  if (type == aoti_torch_device_type_meta()) return out << "meta";
  const char* label = type == aoti_torch_device_type_cuda() ? "cuda" : "device";
  return out << label << ":" << name.tensor->device_index;
}

}  // namespace mamba_state
