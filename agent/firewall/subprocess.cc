#include "agent/firewall/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_format.h"
#include "common/strings.h"

extern char** environ;

namespace rampart::agent {
namespace {

using SteadyClock = std::chrono::steady_clock;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

absl::Status Errno(std::string_view what) {
  return absl::UnavailableError(
      absl::StrFormat("%s: %s", what, std::strerror(errno)));
}

int RemainingMs(SteadyClock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - SteadyClock::now());
  if (left.count() <= 0) {
    return 0;
  }
  return left.count() > 60000 ? 60000 : static_cast<int>(left.count());
}

}  // namespace

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const CommandOptions& options) {
  if (argv.empty() || argv[0].empty()) {
    return absl::InvalidArgumentError("empty command");
  }
  // stdin is a socket so that writing to a child that stopped reading
  // fails with EPIPE instead of raising SIGPIPE (MSG_NOSIGNAL).
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Errno("socketpair");
  }
  Fd in_parent(sv[0]), in_child(sv[1]);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return Errno("pipe2");
  }
  Fd out_parent(out[0]), out_child(out[1]);

  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    envp.push_back(*e);
  }
  for (const std::string& e : options.env) {
    envp.push_back(const_cast<char*>(e.c_str()));
  }
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_child.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out_child.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, out_child.get(), 2);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0].c_str(), &fa, &attr, args.data(),
                                envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    const std::string msg =
        absl::StrFormat("cannot run %s: %s", Abbreviate(argv[0]), strerror(rc));
    return rc == ENOENT || rc == EACCES ? absl::NotFoundError(msg)
                                        : absl::UnavailableError(msg);
  }
  in_child.Close();
  out_child.Close();

  const auto deadline =
      SteadyClock::now() +
      std::chrono::milliseconds(absl::ToInt64Milliseconds(options.timeout));
  CommandResult result;
  std::string_view input = options.input;
  if (input.empty()) {
    in_parent.Close();
  } else {
    ::fcntl(in_parent.get(), F_SETFL,
            ::fcntl(in_parent.get(), F_GETFL) | O_NONBLOCK);
  }
  bool timed_out = false;
  while (out_parent.get() >= 0) {
    struct pollfd fds[2];
    int n = 0;
    fds[n++] = {out_parent.get(), POLLIN, 0};
    if (in_parent.get() >= 0) {
      fds[n++] = {in_parent.get(), POLLOUT, 0};
    }
    const int ms = RemainingMs(deadline);
    if (ms == 0) {
      timed_out = true;
      break;
    }
    const int ready = ::poll(fds, static_cast<nfds_t>(n), ms);
    if (ready < 0) {
      if (errno == EINTR) {
        continue;
      }
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return Errno("poll");
    }
    if (n == 2 && fds[1].revents != 0) {
      const ssize_t w = ::send(in_parent.get(), input.data(),
                               std::min<size_t>(input.size(), 1 << 16),
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        input.remove_prefix(static_cast<size_t>(w));
      }
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || input.empty()) {
        in_parent.Close();  // done, or the child stopped reading
      }
    }
    if (fds[0].revents != 0) {
      char buf[16384];
      const ssize_t r = ::read(out_parent.get(), buf, sizeof(buf));
      if (r > 0) {
        const size_t keep =
            std::min(static_cast<size_t>(r),
                     options.max_output -
                         std::min(options.max_output, result.output.size()));
        result.output.append(buf, keep);
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        out_parent.Close();
      }
    }
  }
  in_parent.Close();
  int status = 0;
  while (!timed_out) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      break;
    }
    if (w < 0 && errno != EINTR) {
      return Errno("waitpid");
    }
    if (RemainingMs(deadline) == 0) {
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (timed_out) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return absl::DeadlineExceededError(absl::StrFormat(
        "%s timed out after %s and was killed", Abbreviate(argv[0]),
        absl::FormatDuration(options.timeout)));
  }
  result.exit_code =
      WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return result;
}

absl::Status RunCommandChecked(const std::vector<std::string>& argv,
                               const CommandOptions& options) {
  absl::StatusOr<CommandResult> r = RunCommand(argv, options);
  if (!r.ok()) {
    return r.status();
  }
  if (r->exit_code != 0) {
    return absl::UnavailableError(absl::StrFormat(
        "%s exited with %d: %s", Abbreviate(argv[0]), r->exit_code,
        Abbreviate(StripWhitespace(r->output), 512)));
  }
  return absl::OkStatus();
}

}  // namespace rampart::agent
