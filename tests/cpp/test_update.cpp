// A C++ server's view: call mamba_state::update through the dispatcher, with no Python, on CPU
// tensors, and check the result, the skip, the untouched slots, and the error for a bad entry.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>

namespace {

int failures = 0;

void expect(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  const std::string build_info = c10::Dispatcher::singleton()
                                     .findSchemaOrThrow("mamba_state::build_info", "")
                                     .typed<std::string()>()
                                     .call();
  std::printf("libmamba_state_ops: %s\n", build_info.c_str());
  expect(build_info.rfind("torch=", 0) == 0, "build_info starts with torch=");
  auto update =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mamba_state::update", "")
          .typed<void(at::TensorList, at::TensorList, const at::Tensor&, const at::Tensor&,
                      const std::optional<at::Tensor>&, int64_t, const std::optional<at::Tensor>&,
                      const std::optional<at::Tensor>&, const std::optional<at::Tensor>&)>();
  auto copy_slots =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mamba_state::copy_slots", "")
          .typed<void(at::TensorList, const at::Tensor&, const at::Tensor&,
                      const std::optional<at::Tensor>&, const std::optional<at::Tensor>&)>();

  const int64_t layers = 3, slots = 7, rows = 4, steps = 5;
  at::manual_seed(0);
  const at::Tensor ssm = at::zeros({layers, slots, 6, 10});
  const at::Tensor conv = at::zeros({layers, slots, 9, 3}, at::kBFloat16);
  const at::Tensor ssm_cache = at::randn({layers, rows, steps, 6, 10});
  const at::Tensor conv_cache = at::randn({layers, rows, steps, 9, 3});  // float32 -> bfloat16
  const at::Tensor dst_slots = at::tensor({5, 0, 2}, at::kLong);
  const at::Tensor accepted = at::tensor({3, 1, 0}, at::kInt);  // lengths: 0 accepted nothing
  const at::Tensor src_rows = at::tensor({3, 0, 1}, at::kLong);
  const at::Tensor status = at::full({3}, -1, at::kInt);

  // With a track copy of row 0's step 1 into slot 6; -1 skips the others.
  update.call({ssm, conv}, {ssm_cache, conv_cache}, dst_slots, accepted, src_rows,
              /*step_offset=*/-1, status, at::tensor({-1, 6, 4}, at::kLong),
              at::tensor({2, 1, -1}, at::kLong));

  expect(ssm[0][5].equal(ssm_cache[0][3][2]) && ssm[2][0].equal(ssm_cache[2][0][0]),
         "SSM entries committed");
  expect(conv[1][5].equal(conv_cache[1][3][2].to(at::kBFloat16)), "conv entry converted");
  expect(!ssm.select(1, 2).any().item<bool>(), "skipped entry left its slot alone");
  expect(!ssm.select(1, 1).any().item<bool>(), "unselected slot untouched");
  expect(status.eq(0).all().item<bool>(), "entry_status written");
  expect(ssm[1][6].equal(ssm_cache[1][0][1]), "track copy committed in the same call");
  expect(!ssm.select(1, 4).any().item<bool>(), "a track step of -1 skips the copy");

  copy_slots.call({ssm, conv}, at::tensor({5, 0}, at::kLong), at::tensor({3, -1}, at::kLong),
                  std::nullopt, std::nullopt);
  expect(ssm.select(1, 3).equal(ssm.select(1, 5)) && conv.select(1, 3).equal(conv.select(1, 5)),
         "copy_slots copied slot 5 into slot 3 in every kind and layer");

  bool raised = false;
  try {
    update.call({ssm}, {ssm_cache}, at::tensor({slots}, at::kLong), at::tensor({0}, at::kLong),
                std::nullopt, 0, std::nullopt, std::nullopt, std::nullopt);
  } catch (const std::out_of_range& error) {  // the stable ABI carries the library's own type
    raised =
        std::string(error.what()).find("dst slot 7 is out of range [0, 7)") != std::string::npos;
  }
  expect(raised, "an out-of-range slot raises IndexError with the entry's bound");

  std::printf(failures ? "%d check(s) failed\n" : "all checks passed\n", failures);
  return failures ? 1 : 0;
}
