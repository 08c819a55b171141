// One call of each operator, as its kernel entry point receives it: the arguments, in the
// schema's order (operators.h), gathered once into a struct that the checks, the plan and the
// launch take. Each kernel (CPU, CUDA, the tests' CPU run of the CUDA grid) registers
// update_entry<its run function>, so the signature is written here alone.
#pragma once

#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "inline_vector.h"
#include "tensor_meta.h"

namespace mamba_state {

using torch::stable::Tensor;

// A list argument's tensors: real calls have two state kinds, an SSM state and a conv window.
using TensorMetas = InlineVector<TensorMeta, 8>;
using OptionalTensorMetas = InlineVector<std::optional<TensorMeta>, 8>;

struct UpdateCall {
  TensorMetas states;         // [L, C, *E] pools, written
  TensorMetas intermediates;  // [L, R, T, *E] caches
  TensorMeta dst_slots;
  TensorMeta steps;
  std::optional<TensorMeta> src_rows;  // absent: row n
  int64_t step_offset;
  std::optional<TensorMeta> entry_status;  // written
  std::optional<TensorMeta> track_slots;
  std::optional<TensorMeta> track_steps;
  // The quantized kinds (kinds of states), and each one's scales and qmax, aligned with them;
  // absent (None) and empty alike when no kind has scales.
  InlineVector<int64_t, 8> scaled_kinds;
  TensorMetas state_scales;                                // [L, C, *S] float32, written
  std::optional<OptionalTensorMetas> intermediate_scales;  // [L, R, T, *S] float32, or none
  std::optional<InlineVector<double, 8>> quant_max;
};

struct CopySlotsCall {
  TensorMetas states;  // [L, C, *E] pools, each read and written
  TensorMeta src_slots;
  TensorMeta dst_slots;
  std::optional<TensorMeta> mask;
  std::optional<TensorMeta> entry_status;  // written
};

inline TensorMetas metas(const std::vector<Tensor>& tensors) {
  TensorMetas result;
  result.reserve(tensors.size());
  for (const Tensor& tensor : tensors) result.push_back(TensorMeta(tensor));
  return result;
}

inline std::optional<TensorMeta> meta(const std::optional<Tensor>& tensor) {
  if (!tensor) return std::nullopt;
  return TensorMeta(*tensor);
}

inline TensorMetas metas(const std::optional<std::vector<Tensor>>& tensors) {
  return tensors ? metas(*tensors) : TensorMetas();
}

inline std::optional<OptionalTensorMetas> metas(
    const std::optional<std::vector<std::optional<Tensor>>>& tensors) {
  if (!tensors) return std::nullopt;
  OptionalTensorMetas result;
  result.reserve(tensors->size());
  for (const std::optional<Tensor>& tensor : *tensors) result.push_back(meta(tensor));
  return result;
}

template <typename T>
InlineVector<T, 8> values(const std::optional<std::vector<T>>& list) {
  InlineVector<T, 8> result;
  if (list) {
    result.reserve(list->size());
    for (const T& value : *list) result.push_back(value);
  }
  return result;
}

// The kernel entry points, boxed with TORCH_BOX. The tensors they receive stay alive for the
// call, so the TensorMetas borrowed from them do too.
template <void (*kRun)(const UpdateCall&)>
void update_entry(std::vector<Tensor> states, std::vector<Tensor> intermediates, Tensor dst_slots,
                  Tensor steps, std::optional<Tensor> src_rows, int64_t step_offset,
                  std::optional<Tensor> entry_status, std::optional<Tensor> track_slots,
                  std::optional<Tensor> track_steps,
                  std::optional<std::vector<int64_t>> scaled_kinds,
                  std::optional<std::vector<Tensor>> state_scales,
                  std::optional<std::vector<std::optional<Tensor>>> intermediate_scales,
                  std::optional<std::vector<double>> quant_max) {
  std::optional<InlineVector<double, 8>> qmax;
  if (quant_max) qmax = values(quant_max);
  kRun(UpdateCall{metas(states), metas(intermediates), TensorMeta(dst_slots), TensorMeta(steps),
                  meta(src_rows), step_offset, meta(entry_status), meta(track_slots),
                  meta(track_steps), values(scaled_kinds), metas(state_scales),
                  metas(intermediate_scales), qmax});
}

template <void (*kRun)(const CopySlotsCall&)>
void copy_slots_entry(std::vector<Tensor> states, Tensor src_slots, Tensor dst_slots,
                      std::optional<Tensor> mask, std::optional<Tensor> entry_status) {
  kRun(CopySlotsCall{metas(states), TensorMeta(src_slots), TensorMeta(dst_slots), meta(mask),
                     meta(entry_status)});
}

}  // namespace mamba_state
