// Preloaded by scripts/gpu_check.sh for the error-case tests: on SIGSEGV, the native frames
// (library and offset) go to stderr, where Python's faulthandler shows only Python's. The GPU
// machine has no gdb; this needs only the C compiler that builds the extension.
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

static void print_backtrace(int signal_number) {
  void* frames[64];
  const int count = backtrace(frames, 64);
  backtrace_symbols_fd(frames, count, STDERR_FILENO);
  _exit(128 + signal_number);
}

__attribute__((constructor)) static void install(void) { signal(SIGSEGV, print_backtrace); }
