#include "agent/firewall/testing/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/strings/str_format.h"
#include "agent/firewall/subprocess.h"

namespace rampart::agent::testing {
namespace {

absl::Status RunIp(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommandChecked(argv, {.timeout = absl::Seconds(20)});
}

void DeleteStaleNamespaces() {
  DIR* dir = ::opendir("/run/netns");
  if (dir == nullptr) {
    return;
  }
  std::vector<std::string> stale;
  while (const struct dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (!name.starts_with("rampart-fw-")) {
      continue;
    }
    name.remove_prefix(11);
    const size_t dash = name.find('-');
    const std::string pid_text(name.substr(0, dash));
    char* end = nullptr;
    const long pid = std::strtol(pid_text.c_str(), &end, 10);
    if (end == pid_text.c_str() || *end != '\0' || pid <= 0) {
      continue;
    }
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      stale.emplace_back(e->d_name);
    }
  }
  ::closedir(dir);
  for (const std::string& name : stale) {
    (void)RunIp({"netns", "del", name});
  }
}

void SockaddrOf(const IpAddress& a, int port, sockaddr_storage* ss,
                socklen_t* len) {
  std::memset(ss, 0, sizeof(*ss));
  if (a.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    sin->sin_addr.s_addr = htonl(a.v4());
    *len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    std::memcpy(sin6->sin6_addr.s6_addr, a.bytes().data(), 16);
    *len = sizeof(sockaddr_in6);
  }
}

}  // namespace

std::string ScopedNetns::UniqueName(const std::string& suffix) {
  return absl::StrFormat("rampart-fw-%d-%s", ::getpid(), suffix);
}

absl::StatusOr<std::unique_ptr<ScopedNetns>> ScopedNetns::Create(
    const std::string& name) {
  DeleteStaleNamespaces();
  if (absl::Status s = RunIp({"netns", "add", name}); !s.ok()) {
    return s;
  }
  std::unique_ptr<ScopedNetns> ns(new ScopedNetns(name));
  ns->thread_ = std::thread([p = ns.get()] { p->Loop(); });
  absl::Status entered;
  {
    absl::MutexLock lock(&ns->mu_);
    ns->mu_.Await(absl::Condition(&ns->entered_));
    entered = ns->enter_status_;
  }
  if (!entered.ok()) {
    return entered;  // the destructor deletes the namespace
  }
  return ns;
}

ScopedNetns::~ScopedNetns() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  (void)RunIp({"netns", "del", name_});
}

void ScopedNetns::Loop() {
  absl::Status status;
  const std::string path = "/run/netns/" + name_;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    status = absl::UnavailableError(
        absl::StrFormat("open %s: %s", path, std::strerror(errno)));
  } else {
    if (::setns(fd, CLONE_NEWNET) != 0) {
      status = absl::UnavailableError(
          absl::StrFormat("setns %s: %s", path, std::strerror(errno)));
    }
    ::close(fd);
  }
  {
    absl::MutexLock lock(&mu_);
    enter_status_ = status;
    entered_ = true;
  }
  if (!status.ok()) {
    return;
  }
  while (true) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &ScopedNetns::HasWorkOrStop));
      if (queue_.empty()) {
        return;
      }
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

void ScopedNetns::RunOnThread(std::function<void()> fn) {
  absl::Mutex done_mu;
  bool done = false;
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back([&] {
      fn();
      absl::MutexLock l(&done_mu);
      done = true;
    });
  }
  absl::MutexLock lock(&done_mu);
  done_mu.Await(absl::Condition(&done));
}

absl::Status ScopedNetns::Ip(const std::vector<std::string>& args) const {
  std::vector<std::string> all = {"-n", name_};
  all.insert(all.end(), args.begin(), args.end());
  return RunIp(all);
}

bool TcpReachable(ScopedNetns& from, const IpAddress& src, const IpAddress& dst,
                  int port, absl::Duration timeout) {
  return from.Call([&]() -> bool {
    const int fam = dst.is_v4() ? AF_INET : AF_INET6;
    const int fd = ::socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      return false;
    }
    sockaddr_storage ss;
    socklen_t len = 0;
    SockaddrOf(src, 0, &ss, &len);
    bool reachable = false;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
      SockaddrOf(dst, port, &ss, &len);
      int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
      if (rc == 0) {
        reachable = true;
      } else if (errno == ECONNREFUSED) {
        reachable = true;
      } else if (errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        if (::poll(&p, 1,
                   static_cast<int>(absl::ToInt64Milliseconds(timeout))) == 1) {
          int err = 0;
          socklen_t elen = sizeof(err);
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
          reachable = err == 0 || err == ECONNREFUSED;
        }
      }
    }
    ::close(fd);
    return reachable;
  });
}

absl::StatusOr<std::unique_ptr<TwoHostTopology>> TwoHostTopology::Create() {
  std::unique_ptr<TwoHostTopology> t(new TwoHostTopology());
  absl::StatusOr<std::unique_ptr<ScopedNetns>> fw =
      ScopedNetns::Create(ScopedNetns::UniqueName("fw"));
  if (!fw.ok()) {
    return fw.status();
  }
  t->fw_ = std::move(*fw);
  absl::StatusOr<std::unique_ptr<ScopedNetns>> peer =
      ScopedNetns::Create(ScopedNetns::UniqueName("peer"));
  if (!peer.ok()) {
    return peer.status();
  }
  t->peer_ = std::move(*peer);
  const std::string a = absl::StrFormat("rfw%da", ::getpid());
  const std::string b = absl::StrFormat("rfw%db", ::getpid());
  // Created directly inside the namespaces: the host never sees the pair.
  if (absl::Status s =
          RunIp({"link", "add", a, "netns", t->fw_->name(), "type", "veth",
                 "peer", "name", b, "netns", t->peer_->name()});
      !s.ok()) {
    return s;
  }
  const std::vector<std::vector<std::string>> fw_cmds = {
      {"link", "set", "lo", "up"},
      {"link", "set", a, "up"},
      {"addr", "add", "198.51.100.1/24", "dev", a},
      {"addr", "add", "2001:db8:100::1/64", "dev", a, "nodad"},
      {"route", "add", "203.0.113.0/24", "via", "198.51.100.2"},
      {"route", "add", "2001:db8:200::/64", "via", "2001:db8:100::2"},
  };
  const std::vector<std::vector<std::string>> peer_cmds = {
      {"link", "set", "lo", "up"},
      {"link", "set", b, "up"},
      {"addr", "add", "198.51.100.2/24", "dev", b},
      {"addr", "add", "198.51.100.3/24", "dev", b},
      {"addr", "add", "203.0.113.5/32", "dev", b},
      {"addr", "add", "203.0.113.200/32", "dev", b},
      {"addr", "add", "2001:db8:100::2/64", "dev", b, "nodad"},
      {"addr", "add", "2001:db8:200::5/128", "dev", b, "nodad"},
  };
  for (const auto& args : fw_cmds) {
    if (absl::Status s = t->fw_->Ip(args); !s.ok()) {
      return s;
    }
  }
  for (const auto& args : peer_cmds) {
    if (absl::Status s = t->peer_->Ip(args); !s.ok()) {
      return s;
    }
  }
  for (const char* src : {"198.51.100.2", "203.0.113.5", "2001:db8:200::5"}) {
    bool up = false;
    for (int i = 0; i < 50 && !up; ++i) {
      up = t->Reachable(src);
    }
    if (!up) {
      return absl::UnavailableError(
          absl::StrFormat("%s cannot reach the fw namespace", src));
    }
  }
  return t;
}

bool TwoHostTopology::Reachable(std::string_view src, int port,
                                absl::Duration timeout) {
  const absl::StatusOr<IpAddress> s = IpAddress::FromString(src);
  if (!s.ok()) {
    return false;
  }
  const IpAddress dst = s->is_v4() ? IpAddress::V4(0xC6336401u)  // .100.1
                                   : *IpAddress::FromString("2001:db8:100::1");
  return TcpReachable(*peer_, *s, dst, port, timeout);
}

std::string NetnsUnavailableReason() {
  if (::geteuid() != 0) {
    return "needs root (network namespaces, nftables)";
  }
  absl::StatusOr<CommandResult> r =
      RunCommand({"ip", "netns", "list"}, {.timeout = absl::Seconds(10)});
  if (!r.ok()) {
    return std::string(r.status().message());
  }
  if (r->exit_code != 0) {
    return "`ip netns list` failed: " + r->output;
  }
  return "";
}

}  // namespace rampart::agent::testing
