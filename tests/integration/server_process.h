#pragma once

// ServerProcess: a real rampart-server child process for integration tests
// and benchmarks. Starts the binary with the given arguments (always on
// 127.0.0.1 with OS-chosen ports unless the arguments say otherwise), waits
// for its "serving ... on HOST:PORT, HTTP on HOST:PORT" line on stderr,
// keeps draining stderr into a buffer (so the child never blocks on a full
// pipe), and stops it with SIGTERM (graceful) or SIGKILL (crash).
//
// Thread-safety: one owning thread; log() may be called from any thread.

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rampart::testing {

class ServerProcess {
 public:
  // Runs `binary args...` with stdin /dev/null. Returns after the serving
  // line, or an error (with the child's stderr so far) if it exits or does
  // not get there within `timeout`.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::vector<std::string>& args,
      absl::Duration timeout = absl::Seconds(60));
  ~ServerProcess();  // SIGKILLs if still running

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  std::string grpc_target() const;  // "127.0.0.1:PORT"
  pid_t pid() const { return pid_; }

  // SIGTERM, then waits up to `timeout` for the exit. Returns the exit status
  // as from waitpid (use WIFEXITED/WEXITSTATUS), or DeadlineExceeded (the
  // child is then SIGKILLed).
  absl::StatusOr<int> Terminate(absl::Duration timeout = absl::Seconds(30));
  // SIGKILL and reap.
  void Kill();

  // Everything the child wrote to stderr so far.
  std::string log() const;

 private:
  ServerProcess() = default;
  void DrainLoop(int fd);
  absl::StatusOr<int> Reap(absl::Duration timeout);

  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int http_port_ = 0;
  std::thread drain_;

  mutable absl::Mutex mu_;
  std::string log_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
};

// Runs `binary args...` to completion (stdin /dev/null) and returns its
// wait status and stderr. DeadlineExceeded (child killed) after `timeout`.
struct ProcessResult {
  int status = 0;  // as from waitpid
  std::string err;
};
absl::StatusOr<ProcessResult> RunProcess(
    const std::string& binary, const std::vector<std::string>& args,
    absl::Duration timeout = absl::Seconds(60));

// A free TCP port on 127.0.0.1 at the time of the call (for a restart that
// must reuse ports; racy in theory, fine on a test machine).
int PickFreePort();

// The build's rampart-server binary (RAMPART_SERVER_BIN compile definition).
std::string ServerBinary();

}  // namespace rampart::testing
