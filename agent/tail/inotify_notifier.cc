#include "agent/tail/inotify_notifier.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/file_util.h"

namespace rampart::agent {
namespace {

constexpr uint32_t kDirMask = IN_MODIFY | IN_CREATE | IN_MOVED_TO |
                              IN_MOVED_FROM | IN_DELETE | IN_ATTRIB |
                              IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF;

void SplitPath(const std::string& path, std::string* dir, std::string* name) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    *dir = ".";
    *name = path;
  } else {
    *dir = slash == 0 ? "/" : path.substr(0, slash);
    *name = path.substr(slash + 1);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<InotifyNotifier>> InotifyNotifier::Create() {
  const int ifd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (ifd < 0) {
    return file_util::ErrnoStatus(errno, "cannot create", "inotify");
  }
  const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    const int err = errno;
    ::close(ifd);
    return file_util::ErrnoStatus(err, "cannot create", "eventfd");
  }
  return std::unique_ptr<InotifyNotifier>(new InotifyNotifier(ifd, efd));
}

InotifyNotifier::~InotifyNotifier() {
  ::close(inotify_fd_);
  ::close(wake_fd_);
}

absl::Status InotifyNotifier::AddWatch(const std::string& dir) {
  const int wd = ::inotify_add_watch(inotify_fd_, dir.c_str(), kDirMask);
  if (wd < 0) {
    return file_util::ErrnoStatus(errno, "cannot watch directory", dir);
  }
  watches_[wd] = dir;
  lost_.erase(dir);
  return absl::OkStatus();
}

absl::Status InotifyNotifier::Watch(const std::string& path) {
  std::string dir, name;
  SplitPath(path, &dir, &name);
  const bool known = names_.count(dir) > 0;
  names_[dir].insert(name);
  if (known && lost_.count(dir) == 0) {
    return absl::OkStatus();  // the same directory is watched already
  }
  return AddWatch(dir);
}

absl::StatusOr<bool> InotifyNotifier::Drain() {
  alignas(struct inotify_event) char buf[16 * 1024];
  bool relevant = false;
  while (true) {
    const ssize_t n = ::read(inotify_fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return relevant;
    }
    if (n <= 0) {
      return file_util::ErrnoStatus(n < 0 ? errno : EIO, "cannot read",
                                    "inotify");
    }
    for (ssize_t at = 0; at < n;) {
      struct inotify_event ev;
      std::memcpy(&ev, buf + at, sizeof(ev));
      const char* name = buf + at + sizeof(struct inotify_event);
      at += static_cast<ssize_t>(sizeof(struct inotify_event) + ev.len);
      if ((ev.mask & IN_Q_OVERFLOW) != 0) {
        relevant = true;  // events were lost: assume everything changed
        continue;
      }
      auto w = watches_.find(ev.wd);
      if (w == watches_.end()) {
        continue;
      }
      if ((ev.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
        relevant = true;
        if ((ev.mask & IN_IGNORED) != 0) {
          lost_.insert(w->second);
          watches_.erase(w);
        }
        continue;
      }
      if (ev.len > 0 && names_[w->second].count(std::string(name)) > 0) {
        relevant = true;
      }
    }
  }
}

absl::StatusOr<bool> InotifyNotifier::Wait(absl::Duration timeout) {
  for (auto it = lost_.begin(); it != lost_.end();) {
    const std::string dir = *it++;
    (void)AddWatch(dir);  // stays lost (polling) until it works
  }
  const int64_t ms = absl::ToInt64Milliseconds(timeout);
  const int poll_ms =
      ms <= 0 ? 0 : static_cast<int>(std::min<int64_t>(ms, INT_MAX));
  struct pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  int r;
  do {
    r = ::poll(fds, 2, poll_ms);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    return file_util::ErrnoStatus(errno, "cannot poll", "inotify");
  }
  bool changed = !lost_.empty() && r == 0;  // polling while a watch is gone
  if ((fds[1].revents & POLLIN) != 0) {
    uint64_t v;
    (void)!::read(wake_fd_, &v, sizeof(v));
    changed = true;
  }
  if ((fds[0].revents & POLLIN) != 0) {
    absl::StatusOr<bool> relevant = Drain();
    if (!relevant.ok()) {
      return relevant.status();
    }
    changed = changed || *relevant;
  }
  return changed;
}

void InotifyNotifier::Wake() {
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
}

}  // namespace rampart::agent
