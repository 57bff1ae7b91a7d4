#pragma once

// Process and command helpers of the end-to-end estate test (tests/e2e):
// a child process whose output goes to a file and that dies with the test,
// and a command run to completion inside a network namespace.
//
// Thread-safety: Child is used by one owning thread.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rampart::e2e {

class Child {
 public:
  // Forks and execs argv (argv[0] an absolute path) with stdin /dev/null,
  // stdout and stderr appended to `log_path`, working directory `cwd` (""
  // = unchanged). The child gets SIGKILL when the forking thread dies.
  // REQUIRES: called from a thread that lives as long as the child should.
  static absl::StatusOr<std::unique_ptr<Child>> Spawn(
      const std::vector<std::string>& argv, const std::string& log_path,
      const std::string& cwd = "");
  ~Child();  // Kill()
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string log() const;  // the whole log file
  // True once `needle` appears in the log at or after byte `from`, false
  // after `timeout` or if the child exited first.
  bool WaitForLog(const std::string& needle, absl::Duration timeout,
                  size_t from = 0);
  bool Running();
  // Sends `sig` and waits up to `timeout` for the exit. True if it exited.
  bool Stop(int sig, absl::Duration timeout);
  // SIGKILL to the child's process group (it and whatever it forked), and
  // reap. Idempotent.
  void Kill();

 private:
  Child(pid_t pid, std::string log_path)
      : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  bool reaped_ = false;
  const std::string log_path_;
};

// "/usr/sbin/ip netns exec NS argv...": the argv prefix for running in NS.
std::vector<std::string> InNetns(const std::string& ns,
                                 const std::vector<std::string>& argv);

// Runs argv to completion; stdout and stderr interleaved in the result.
struct Ran {
  int exit_code = -1;
  std::string output;
};
absl::StatusOr<Ran> RunCmd(const std::vector<std::string>& argv,
                           absl::Duration timeout = absl::Seconds(60));

}  // namespace rampart::e2e
