// The CPU kernel of mamba_state::update: validate every applied entry, then copy in parallel tasks
// of about kTaskBytes each, with memcpy for contiguous same-dtype runs.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../update_plan.h"

namespace mamba_state {
namespace {

// Work is split into tasks of about this many bytes, so that large SSM entries and small conv
// entries alike spread evenly over threads.
constexpr int64_t kTaskBytes = 64 * 1024;

template <typename Element>
void copy_strided(char* dst, int64_t dst_stride, const char* src, int64_t src_stride,
                  int64_t count) {
  auto* out = reinterpret_cast<Element*>(dst);
  const auto* in = reinterpret_cast<const Element*>(src);
  for (int64_t i = 0; i < count; ++i) out[i * dst_stride] = in[i * src_stride];
}

void copy_bytes(char* dst, int64_t dst_stride, const char* src, int64_t src_stride, int64_t count,
                int32_t elem_size) {
  if (dst_stride == 1 && src_stride == 1) {
    std::memcpy(dst, src, static_cast<size_t>(count) * elem_size);
    return;
  }
  switch (elem_size) {  // plan_update admits only these sizes
    case 1: return copy_strided<ElementBytes<1>>(dst, dst_stride, src, src_stride, count);
    case 2: return copy_strided<ElementBytes<2>>(dst, dst_stride, src, src_stride, count);
    case 4: return copy_strided<ElementBytes<4>>(dst, dst_stride, src, src_stride, count);
    case 8: return copy_strided<ElementBytes<8>>(dst, dst_stride, src, src_stride, count);
    default: return copy_strided<ElementBytes<16>>(dst, dst_stride, src, src_stride, count);
  }
}

template <typename Src, typename Dst>
void convert(char* dst, int64_t dst_stride, const char* src, int64_t src_stride, int64_t count) {
  auto* out = reinterpret_cast<Dst*>(dst);
  const auto* in = reinterpret_cast<const Src*>(src);
  if (dst_stride == 1 && src_stride == 1) {
    for (int64_t i = 0; i < count; ++i) out[i] = convert_value<Src, Dst>(in[i]);
  } else {
    for (int64_t i = 0; i < count; ++i) {
      out[i * dst_stride] = convert_value<Src, Dst>(in[i * src_stride]);
    }
  }
}

// Copies `count` elements along the innermost entry dim, starting at the given elements.
void copy_run(const StateCopy& copy, char* dst, int64_t dst_stride, const char* src,
              int64_t src_stride, int64_t count) {
  visit_conversion(copy.conversion, [&](auto types) {
    using Types = decltype(types);
    if constexpr (std::is_same_v<Types, CopyBytesTag>) {
      copy_bytes(dst, dst_stride, src, src_stride, count, copy.dst_elem_size);
    } else {
      convert<typename Types::Source, typename Types::Dest>(dst, dst_stride, src, src_stride,
                                                            count);
    }
  });
}

// Copies elements [begin, end) of one entry, one innermost run at a time.
void copy_entry_elements(const StateCopy& copy, char* dst_entry, const char* src_entry,
                         int64_t begin, int64_t end) {
  const EntryLayout& entry = copy.entry;
  if (entry.ndim <= 1) {  // one run: the contiguous case
    const int64_t dst_stride = entry.ndim == 1 ? entry.dst_strides[0] : 0;
    const int64_t src_stride = entry.ndim == 1 ? entry.src_strides[0] : 0;
    copy_run(copy, dst_entry + begin * dst_stride * copy.dst_elem_size, dst_stride,
             src_entry + begin * src_stride * copy.src_elem_size, src_stride, end - begin);
    return;
  }
  const int inner = entry.ndim - 1;
  const int64_t run_length = entry.sizes[inner];
  for (int64_t element = begin; element < end;) {
    const int64_t count = std::min(run_length - element % run_length, end - element);
    int64_t dst_offset;
    int64_t src_offset;
    entry_offsets(entry, element, &dst_offset, &src_offset);
    copy_run(copy, dst_entry + dst_offset * copy.dst_elem_size, entry.dst_strides[inner],
             src_entry + src_offset * copy.src_elem_size, entry.src_strides[inner], count);
    element += count;
  }
}

// One state kind's share of the task space. A kind's work is its N x L entries laid end to end
// (entry-major, then layer, then element); each task is a range of task_elements of it, about
// kTaskBytes whatever the entry size, so that an even split of tasks is an even split of bytes.
struct StateTasks {
  int64_t first_task;
  int64_t task_elements;
  int64_t total_elements;
};

void update_cpu(at::TensorList states, at::TensorList intermediates, const at::Tensor& dst_slots,
                const at::Tensor& steps, const std::optional<at::Tensor>& src_rows,
                int64_t step_offset, const std::optional<at::Tensor>& entry_status) {
  const UpdatePlan plan =
      plan_update(states, intermediates, dst_slots, steps, src_rows, step_offset, entry_status);
  const int64_t num_entries = plan.indices.num_entries;

  // Every applied entry is checked before anything is written.
  std::vector<ResolvedEntry> entries(num_entries);
  for (int64_t n = 0; n < num_entries; ++n) {
    entries[n] = resolve_entry(plan.indices, n);
    TORCH_CHECK_INDEX(entries[n].skipped || entries[n].status == 0,
                      describe_bad_entry(plan.indices, n, entries[n]));
  }
  if (plan.entry_status != nullptr) {
    for (int64_t n = 0; n < num_entries; ++n) plan.entry_status[n * plan.entry_status_stride] = 0;
  }

  std::vector<StateTasks> tasks;
  int64_t num_tasks = 0;
  for (const StateCopy& copy : plan.states) {
    const int64_t elem_bytes = std::max(copy.dst_elem_size, copy.src_elem_size);
    const int64_t task_elements = std::max<int64_t>(1, kTaskBytes / elem_bytes);
    const int64_t total_elements = num_entries * copy.num_layers * copy.entry.numel;
    tasks.push_back({num_tasks, task_elements, total_elements});
    num_tasks += (total_elements + task_elements - 1) / task_elements;
  }

  at::parallel_for(0, num_tasks, 1, [&](int64_t first, int64_t last) {
    for (int64_t task = first; task < last; ++task) {
      size_t k = tasks.size() - 1;
      while (task < tasks[k].first_task) --k;
      const StateCopy& copy = plan.states[k];
      const int64_t begin = (task - tasks[k].first_task) * tasks[k].task_elements;
      const int64_t end = std::min(begin + tasks[k].task_elements, tasks[k].total_elements);
      // Walk (entry, layer) pairs from the task's first element on, without dividing per run.
      const int64_t numel = copy.entry.numel;
      const int64_t first_entry_layer = begin / numel;
      int64_t element = begin - first_entry_layer * numel;
      int64_t n = first_entry_layer / copy.num_layers;
      int64_t layer = first_entry_layer - n * copy.num_layers;
      for (int64_t position = begin; position < end;) {
        const int64_t count = std::min(numel - element, end - position);
        const ResolvedEntry& entry = entries[n];
        if (!entry.skipped) {
          copy_entry_elements(copy, copy.dst_entry(layer, entry.slot),
                              copy.src_entry(layer, entry.row, entry.step), element,
                              element + count);
        }
        position += count;
        element = 0;
        if (++layer == copy.num_layers) {
          layer = 0;
          ++n;
        }
      }
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(mamba_state, CPU, m) { m.impl("update", &update_cpu); }

}  // namespace mamba_state
