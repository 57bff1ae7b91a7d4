#pragma once

// RunCommand: runs a program without a shell (argv only), feeds it stdin,
// collects its output and enforces a timeout. Used by the ipset, exec and
// netsh backends, and by the namespace tests.
//
// Thread-safety: thread-safe. The child inherits the calling thread's
// namespaces (so a thread that entered a network namespace runs `ipset` in
// it), the process environment plus `env`, and no file descriptors except
// stdin/stdout/stderr.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rampart::agent {

struct CommandResult {
  // Exit status (0..255), or -N if the child died of signal N.
  int exit_code = 0;
  // stdout and stderr interleaved, at most `max_output` bytes (the rest is
  // read and dropped).
  std::string output;
};

struct CommandOptions {
  // Bytes written to the child's stdin, which is then closed. A child that
  // exits without reading them all is not an error.
  std::string_view input;
  // The child is killed (SIGKILL) when it runs longer. Default 30 s.
  absl::Duration timeout = absl::Seconds(30);
  // Extra "NAME=value" environment entries. Default none.
  std::vector<std::string> env;
  // Output kept in CommandResult::output. Default 64 KiB.
  size_t max_output = 64 * 1024;
};

// Runs argv[0] (searched in PATH when it has no '/') with `argv`.
// Returns the result whatever the exit status. Errors: InvalidArgument for
// an empty argv; NotFound if the program cannot be executed; DeadlineExceeded
// if it timed out (it was killed); Unavailable for pipe or spawn failures.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const CommandOptions& options = {});

// RunCommand, mapping a non-zero exit to Unavailable("<argv[0]> exited
// with N: <output, abbreviated>").
absl::Status RunCommandChecked(const std::vector<std::string>& argv,
                               const CommandOptions& options = {});

}  // namespace rampart::agent
