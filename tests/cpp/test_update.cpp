// A C++ server's view: call mamba_state::update through the dispatcher, with no Python, on CPU
// tensors, and check the result, the skip, the untouched slots, and the error for a bad entry.
//
// The dispatcher takes a stack: arguments in the schema's order. The calls here name their
// arguments instead (call_by_name builds the stack from the schema's own argument list, each
// argument left out taking its default), so that a change of the schema binds no value to the
// wrong parameter: it is picked up, or it is an error that names the argument.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <cstdio>
#include <map>
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

using Arguments = std::map<std::string, c10::IValue>;

// The operator `name` called with the arguments given by name, as Python's keywords.
void call_by_name(const char* name, Arguments arguments) {
  const c10::OperatorHandle op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
  torch::jit::Stack stack;
  for (const c10::Argument& argument : op.schema().arguments()) {
    const auto given = arguments.find(argument.name());
    if (given != arguments.end()) {
      stack.push_back(given->second);
      arguments.erase(given);
    } else if (argument.default_value()) {
      stack.push_back(*argument.default_value());
    } else {
      throw std::invalid_argument(std::string(name) + ": no value for " + argument.name());
    }
  }
  if (!arguments.empty()) {
    throw std::invalid_argument(std::string(name) + " has no argument " + arguments.begin()->first);
  }
  op.callBoxed(&stack);
}

c10::IValue list(std::initializer_list<at::Tensor> tensors) {
  return c10::List<at::Tensor>(tensors);
}

}  // namespace

int main() {
  const std::string build_info = c10::Dispatcher::singleton()
                                     .findSchemaOrThrow("mamba_state::build_info", "")
                                     .typed<std::string()>()
                                     .call();
  std::printf("libmamba_state_ops: %s\n", build_info.c_str());
  expect(build_info.rfind("torch=", 0) == 0, "build_info starts with torch=");

  const int64_t layers = 3, slots = 7, rows = 4, steps = 5;
  at::manual_seed(0);
  const at::Tensor ssm = at::zeros({layers, slots, 6, 10});
  const at::Tensor conv = at::zeros({layers, slots, 9, 3}, at::kBFloat16);
  const at::Tensor ssm_cache = at::randn({layers, rows, steps, 6, 10});
  const at::Tensor conv_cache = at::randn({layers, rows, steps, 9, 3});  // float32 -> bfloat16
  const at::Tensor status = at::full({3}, -1, at::kInt);

  // Accepted lengths (0: nothing accepted), with a track copy of row 0's step 1 into slot 6;
  // -1 skips the others.
  call_by_name("mamba_state::update", {{"states", list({ssm, conv})},
                                       {"intermediates", list({ssm_cache, conv_cache})},
                                       {"dst_slots", at::tensor({5, 0, 2}, at::kLong)},
                                       {"steps", at::tensor({3, 1, 0}, at::kInt)},
                                       {"src_rows", at::tensor({3, 0, 1}, at::kLong)},
                                       {"step_offset", int64_t{-1}},
                                       {"entry_status", status},
                                       {"track_slots", at::tensor({-1, 6, 4}, at::kLong)},
                                       {"track_steps", at::tensor({2, 1, -1}, at::kLong)}});

  expect(ssm[0][5].equal(ssm_cache[0][3][2]) && ssm[2][0].equal(ssm_cache[2][0][0]),
         "SSM states committed");
  expect(conv[1][5].equal(conv_cache[1][3][2].to(at::kBFloat16)), "conv state converted");
  expect(!ssm.select(1, 2).any().item<bool>(), "skipped entry left its slot alone");
  expect(!ssm.select(1, 1).any().item<bool>(), "unselected slot untouched");
  expect(status.eq(0).all().item<bool>(), "entry_status written");
  expect(ssm[1][6].equal(ssm_cache[1][0][1]), "track copy committed in the same call");
  expect(!ssm.select(1, 4).any().item<bool>(), "a track step of -1 skips the copy");

  call_by_name("mamba_state::copy_slots", {{"states", list({ssm, conv})},
                                           {"src_slots", at::tensor({5, 0}, at::kLong)},
                                           {"dst_slots", at::tensor({3, -1}, at::kLong)}});
  expect(ssm.select(1, 3).equal(ssm.select(1, 5)) && conv.select(1, 3).equal(conv.select(1, 5)),
         "copy_slots copied slot 5 into slot 3 in every kind and layer");

  bool raised = false;
  try {
    call_by_name("mamba_state::update", {{"states", list({ssm})},
                                         {"intermediates", list({ssm_cache})},
                                         {"dst_slots", at::tensor({slots}, at::kLong)},
                                         {"steps", at::tensor({0}, at::kLong)}});
  } catch (const std::out_of_range& error) {  // the stable ABI carries the library's own type
    raised =
        std::string(error.what()).find("dst slot 7 is out of range [0, 7)") != std::string::npos;
  }
  expect(raised, "an out-of-range slot raises IndexError with the entry's bound");

  raised = false;
  try {
    call_by_name("mamba_state::copy_slots", {{"states", list({ssm})},
                                             {"src_slots", at::tensor({0}, at::kLong)},
                                             {"dst_slot", at::tensor({1}, at::kLong)}});
  } catch (const std::invalid_argument& error) {
    raised = std::string(error.what()).find("no value for dst_slots") != std::string::npos;
  }
  expect(raised, "a misspelt argument name is an error, not a value bound elsewhere");

  std::printf(failures ? "%d check(s) failed\n" : "all checks passed\n", failures);
  return failures ? 1 : 0;
}
