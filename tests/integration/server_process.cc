#include "tests/integration/server_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_format.h"

namespace rampart::testing {
namespace {

// Parses "... on 127.0.0.1:PORT, HTTP on 127.0.0.1:PORT, ..." (the line
// server/main.cc prints once it serves).
bool ParseServingLine(const std::string& log, int& grpc_port, int& http_port) {
  const size_t at = log.find("serving agents and admin on ");
  if (at == std::string::npos) {
    return false;
  }
  const size_t eol = log.find('\n', at);
  if (eol == std::string::npos) {
    return false;
  }
  const std::string line = log.substr(at, eol - at);
  const size_t comma = line.find(", HTTP on ");
  if (comma == std::string::npos) {
    return false;
  }
  const size_t colon1 = line.rfind(':', comma);
  const size_t http_start = comma + 10;
  const size_t comma2 = line.find(',', http_start);
  const std::string http = line.substr(http_start, comma2 - http_start);
  const size_t colon2 = http.rfind(':');
  if (colon1 == std::string::npos || colon2 == std::string::npos) {
    return false;
  }
  grpc_port = std::atoi(line.substr(colon1 + 1, comma - colon1 - 1).c_str());
  http_port = std::atoi(http.substr(colon2 + 1).c_str());
  return grpc_port > 0 && http_port > 0;
}

// Copies `output` (a child's stderr) to our stderr if it holds a sanitizer
// report ("SUMMARY: <Name>Sanitizer: ..."): in a RAMPART_SANITIZE build the
// children are instrumented too, and their reports must reach the test's
// output (ctest fails a sanitizer build's test whose output has one).
void ForwardSanitizerReport(const std::string& who, const std::string& output) {
  for (size_t at = output.find("SUMMARY: "); at != std::string::npos;
       at = output.find("SUMMARY: ", at + 1)) {
    const size_t eol = output.find('\n', at);
    if (output.substr(at, eol - at).find("Sanitizer") != std::string::npos) {
      std::fprintf(stderr,
                   "---- stderr of %s (sanitizer report) ----\n%s\n----\n",
                   who.c_str(), output.c_str());
      return;
    }
  }
}

// Forks and execs `binary args...` with stdin and stdout on /dev/null and
// stderr into a pipe whose read end is stored in `*stderr_fd`. The child
// dies with its parent (a killed or timed-out test or benchmark must not
// leave a server behind).
absl::StatusOr<pid_t> Spawn(const std::string& binary,
                            const std::vector<std::string>& args,
                            int* stderr_fd) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(std::strerror(errno));
  }
  std::vector<std::string> argv_storage = {binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return absl::InternalError(std::strerror(err));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(pipe_fds[1], 2);
    execv(binary.c_str(), argv.data());
    std::fprintf(stderr, "exec %s: %s\n", binary.c_str(), std::strerror(errno));
    _exit(127);
  }
  close(pipe_fds[1]);
  *stderr_fd = pipe_fds[0];
  return pid;
}

}  // namespace

std::string ServerBinary() { return RAMPART_SERVER_BIN; }

absl::StatusOr<ProcessResult> RunProcess(const std::string& binary,
                                         const std::vector<std::string>& args,
                                         absl::Duration timeout) {
  int err_fd = -1;
  absl::StatusOr<pid_t> spawned = Spawn(binary, args, &err_fd);
  if (!spawned.ok()) {
    return spawned.status();
  }
  const pid_t pid = *spawned;
  ProcessResult result;
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (true) {
    const int left =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    pollfd pfd{err_fd, POLLIN, 0};
    if (left <= 0 || poll(&pfd, 1, left) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      close(err_fd);
      ForwardSanitizerReport(binary, result.err);
      return absl::DeadlineExceededError("process did not finish:\n" +
                                         result.err);
    }
    const ssize_t n = read(err_fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    result.err.append(buf, static_cast<size_t>(n));
  }
  close(err_fd);
  waitpid(pid, &result.status, 0);
  ForwardSanitizerReport(binary, result.err);
  return result;
}

int PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, const std::vector<std::string>& args,
    absl::Duration timeout) {
  int err_fd = -1;
  absl::StatusOr<pid_t> pid = Spawn(binary, args, &err_fd);
  if (!pid.ok()) {
    return pid.status();
  }
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  p->pid_ = *pid;
  p->drain_ = std::thread([raw = p.get(), fd = err_fd] { raw->DrainLoop(fd); });

  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&p->mu_);
  while (true) {
    if (ParseServingLine(p->log_, p->grpc_port_, p->http_port_)) {
      return p;
    }
    if (p->eof_) {
      return absl::UnavailableError(absl::StrFormat(
          "rampart-server exited before serving:\n%s", p->log_));
    }
    if (p->mu_.AwaitWithDeadline(
            absl::Condition(
                +[](ServerProcess* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                  int g = 0;
                  int h = 0;
                  return s->eof_ || ParseServingLine(s->log_, g, h);
                },
                p.get()),
            deadline)) {
      continue;
    }
    return absl::DeadlineExceededError(
        absl::StrFormat("rampart-server did not serve within %s:\n%s",
                        absl::FormatDuration(timeout), p->log_));
  }
}

void ServerProcess::DrainLoop(int fd) {
  char buf[4096];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    absl::MutexLock lock(&mu_);
    if (n <= 0) {
      eof_ = true;
      break;
    }
    // Bounded: keep the last 4 MiB.
    log_.append(buf, static_cast<size_t>(n));
    if (log_.size() > (4u << 20)) {
      log_.erase(0, log_.size() - (4u << 20));
    }
  }
  close(fd);
}

std::string ServerProcess::grpc_target() const {
  return absl::StrFormat("127.0.0.1:%d", grpc_port_);
}

std::string ServerProcess::log() const {
  absl::MutexLock lock(&mu_);
  return log_;
}

absl::StatusOr<int> ServerProcess::Reap(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (drain_.joinable()) {
        drain_.join();
      }
      return status;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError("child did not exit");
    }
    // Polling a child's exit has no blocking-with-timeout primitive short
    // of signalfd; a short bounded poll is fine here.
    poll(nullptr, 0, 10);
  }
}

absl::StatusOr<int> ServerProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0) {
    return absl::FailedPreconditionError("not running");
  }
  kill(pid_, SIGTERM);
  auto status = Reap(timeout);
  if (!status.ok()) {
    Kill();
  }
  return status;
}

void ServerProcess::Kill() {
  if (pid_ <= 0) {
    return;
  }
  kill(pid_, SIGKILL);
  (void)Reap(absl::Seconds(30));
}

ServerProcess::~ServerProcess() {
  Kill();
  if (drain_.joinable()) {
    drain_.join();
  }
  ForwardSanitizerReport("rampart-server", log());
}

}  // namespace rampart::testing
