#include "tests/e2e/estate_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "agent/firewall/subprocess.h"

namespace rampart::e2e {

absl::StatusOr<std::unique_ptr<Child>> Child::Spawn(
    const std::vector<std::string>& argv, const std::string& log_path,
    const std::string& cwd) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::vector<std::string> storage = argv;
  std::vector<char*> args;
  for (std::string& a : storage) args.push_back(a.data());
  args.push_back(nullptr);
  const int log_fd =
      ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("open ", log_path, ": ", std::strerror(errno)));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return absl::UnavailableError(std::strerror(errno));
  }
  if (pid == 0) {
    // Its own process group, so that Kill() also ends what it forks (hydra's
    // worker processes outlived a SIGKILL of hydra alone).
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(126);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  ::close(log_fd);
  ::setpgid(pid, pid);  // also here: no race with Kill() before the exec
  return std::unique_ptr<Child>(new Child(pid, log_path));
}

Child::~Child() { Kill(); }

std::string Child::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Child::WaitForLog(const std::string& needle, absl::Duration timeout,
                       size_t from) {
  const absl::Time deadline = absl::Now() + timeout;
  auto found = [&] {
    const std::string text = log();
    return text.size() > from && text.find(needle, from) != std::string::npos;
  };
  while (absl::Now() < deadline) {
    if (found()) return true;
    if (!Running()) return found();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

bool Child::Running() {
  if (reaped_) return false;
  // Looks without reaping: while the exited leader is a zombie its pid (the
  // group id) cannot be reused, so Kill() can still end what it forked.
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info,
               WEXITED | WNOHANG | WNOWAIT) == 0 &&
      info.si_pid == pid_) {
    Kill();
    return false;
  }
  return true;
}

bool Child::Stop(int sig, absl::Duration timeout) {
  if (!Running()) return true;
  ::kill(pid_, sig);
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (!Running()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

void Child::Kill() {
  if (reaped_) return;
  // The leader is alive or an unreaped zombie, so the group id is still
  // ours: the whole group, then reap the leader.
  ::kill(-pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  reaped_ = true;
}

std::vector<std::string> InNetns(const std::string& ns,
                                 const std::vector<std::string>& argv) {
  std::vector<std::string> out = {"/usr/sbin/ip", "netns", "exec", ns};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

absl::StatusOr<Ran> RunCmd(const std::vector<std::string>& argv,
                           absl::Duration timeout) {
  absl::StatusOr<agent::CommandResult> r =
      agent::RunCommand(argv, {.timeout = timeout, .max_output = 1 << 20});
  if (!r.ok()) return r.status();
  return Ran{.exit_code = r->exit_code, .output = std::move(r->output)};
}

}  // namespace rampart::e2e
